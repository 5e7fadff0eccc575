//! The Kubernetes manifests (`deploy/kubernetes`): every kustomization renders with
//! `kubectl kustomize`, and what its redline containers run is what redline accepts: their
//! flags (`redline <command> … --help`), the `REDLINE_*` variables they set (the `[env: …]`
//! names of that help), the mounted TOML file and all values together (`redline config
//! check`, which validates as at startup). The consumer's name is its pod's name; the
//! listeners, probes and Services agree, and the probes answer on a real producer and consumer;
//! the autoscalers watch the group and every partition stream the consumers read.
//!
//! Schema validation of the same renders (Kubernetes and KEDA) is `deploy/kubernetes/
//! validate.py`'s, which `scripts/test` runs. `kubectl kustomize` needs no cluster; these tests
//! fail, saying so, when kubectl is missing.

mod render;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use redline_testkit::{free_port, wait_until, ChildGuard, RedisServer};

use crate::support::{client, redline, GROUP, STREAM};
use render::{config_check, env_options, is_sentinel, key, renders, seconds, text};

/// The repository root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Which section of `config check`'s output a container's command is.
fn section(command: &str) -> &str {
    match command {
        "producer" | "consumer" => command,
        other => panic!("a redline container runs `{other}`; expected producer or consumer"),
    }
}

#[test]
fn every_kustomization_renders_and_runs_the_producer_and_consumers() {
    let names: Vec<&str> = renders().iter().map(|r| r.name.as_str()).collect();
    for expected in [
        "base",
        "redis",
        "overlays/standalone",
        "overlays/keda",
        "overlays/hpa",
        "overlays/sentinel",
        "overlays/cluster",
    ] {
        assert!(
            names.contains(&expected),
            "no kustomization {expected} in {names:?}"
        );
    }
    for render in renders().iter().filter(|r| r.name != "redis") {
        let mut commands: Vec<String> = render
            .redline()
            .iter()
            .map(|c| c.args()[0].clone())
            .collect();
        commands.sort();
        assert_eq!(commands, ["consumer", "producer"], "{}", render.name);
    }
}

#[test]
fn manifests_use_only_flags_variables_and_config_keys_redline_accepts() {
    for render in renders() {
        for container in render.redline() {
            let label = container.label();
            let args = container.args();
            // Clap, in the subcommand's context: every flag exists, typed values parse.
            let out = redline().args(&args).arg("--help").output().unwrap();
            assert!(
                out.status.success(),
                "{label}: `redline {}` is refused:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let known = env_options(&args[0]);
            for name in container.env_names() {
                assert!(
                    known.contains(&name),
                    "{label}: redline {} has no {name}",
                    args[0]
                );
            }
            // The file alone, then with everything the pod sets (`effective` panics on a
            // refusal, naming it).
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), container.config_file()).unwrap();
            let out = config_check(file.path(), &[], &BTreeMap::new());
            assert!(
                out.status.success(),
                "{label}: redline config check refuses the ConfigMap's TOML:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            container.effective();
        }
    }
}

#[test]
fn consumer_names_come_from_the_pod_name() {
    for render in renders() {
        for container in render
            .redline()
            .iter()
            .filter(|c| c.args()[0] == "consumer")
        {
            let label = container.label();
            assert_eq!(
                text(&container.workload["kind"]),
                "StatefulSet",
                "{label}: consumers keep their names only in a StatefulSet"
            );
            let vars = container.container["env"].as_sequence().unwrap();
            let name = vars.iter().find(|v| v["name"] == "REDLINE_CONSUMER");
            let name = name.unwrap_or_else(|| panic!("{label}: no REDLINE_CONSUMER"));
            assert_eq!(
                text(&name["valueFrom"]["fieldRef"]["fieldPath"]),
                "metadata.name",
                "{label}: REDLINE_CONSUMER must be the pod's name"
            );
            // Nothing that wins over it (a flag) or hides it.
            assert!(
                !container.args().iter().any(|a| a.starts_with("--consumer")),
                "{label}"
            );
            assert!(
                !container.env_from().contains_key("REDLINE_CONSUMER"),
                "{label}"
            );
            let file: toml::Table = toml::from_str(&container.config_file()).unwrap();
            assert!(
                !file.contains_key("consumer"),
                "{label}: `consumer` in the TOML"
            );
            // What redline makes of it: the pod redline-consumer-0 is consumer
            // redline-consumer-0 (with workers > 1: redline-consumer-0-1 …).
            let effective = container.effective();
            assert_eq!(
                key(&effective, "consumer.consumer").as_str(),
                Some(format!("{}-0", container.name()).as_str()),
                "{label}"
            );
        }
    }
}

#[test]
fn listeners_probes_and_services_agree_and_pods_run_unprivileged() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("ENTRYPOINT [\"redline\"]"),
        "Dockerfile entrypoint"
    );
    assert!(dockerfile.contains("--uid 10001"), "Dockerfile user");
    for render in renders() {
        for container in render.redline() {
            let label = container.label();
            let command = container.args()[0].clone();
            let effective = container.effective();
            let listen = match section(&command) {
                "producer" => key(&effective, "producer.listen"),
                _ => key(&effective, "consumer.metrics_listen"),
            };
            let listen = listen
                .as_str()
                .unwrap_or_else(|| panic!("{label}: no listener"));
            let (host, port) = listen.rsplit_once(':').unwrap();
            assert_eq!(
                host, "0.0.0.0",
                "{label}: {listen} is unreachable from the kubelet"
            );
            let port: u64 = port.parse().unwrap();
            let ports = container.container["ports"].as_sequence().unwrap();
            let named = ports
                .iter()
                .find(|p| p["containerPort"].as_u64() == Some(port));
            let named = text(&named.unwrap_or_else(|| panic!("{label}: no port {port}"))["name"]);
            for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
                let get = &container.container[probe]["httpGet"];
                assert_eq!(text(&get["path"]), path, "{label}: {probe}");
                assert_eq!(text(&get["port"]), named, "{label}: {probe} port");
            }
            let service = render.get("Service", &container.name());
            let targets: Vec<String> = service["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| text(&p["targetPort"]))
                .collect();
            assert!(
                targets.contains(&named),
                "{label}: Service targets {targets:?}"
            );

            // One batch's delivery (the shutdown deadline, one sink write) or one request's
            // answer fits in the grace period, so SIGKILL never cuts between write and ack.
            let grace = container.pod()["terminationGracePeriodSeconds"].as_u64();
            let grace = grace.unwrap_or_else(|| panic!("{label}: no grace period")) as f64;
            let needed = match section(&command) {
                "producer" => {
                    seconds(&effective, "producer.shutdown_timeout")
                        + seconds(&effective, "producer.read_timeout")
                }
                _ => {
                    seconds(&effective, "consumer.shutdown_timeout")
                        + seconds(&effective, "consumer.sink.timeout")
                }
            };
            assert!(
                grace > needed,
                "{label}: grace {grace}s, one delivery {needed}s"
            );

            let pod = &container.pod()["securityContext"];
            assert_eq!(pod["runAsNonRoot"], true, "{label}");
            assert_eq!(
                pod["runAsUser"].as_u64(),
                Some(10001),
                "{label}: the image's user"
            );
            let own = &container.container["securityContext"];
            assert_eq!(own["readOnlyRootFilesystem"], true, "{label}");
            assert_eq!(own["allowPrivilegeEscalation"], false, "{label}");
            assert_eq!(own["capabilities"]["drop"][0], "ALL", "{label}");
            for bound in ["requests", "limits"] {
                let memory = text(&container.container["resources"][bound]["memory"]);
                let mib: u64 = memory
                    .strip_suffix("Mi")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0);
                assert!(
                    mib >= 64,
                    "{label}: {bound} memory {memory} (peak RSS up to 64 MiB)"
                );
            }
            assert_eq!(
                text(&container.container["image"]),
                "redline:dev",
                "{label}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_on_a_real_producer_and_consumer() {
    let render = renders()
        .iter()
        .find(|r| r.name == "overlays/standalone")
        .unwrap();
    let redis = RedisServer::start(&[]);
    let mut running = Vec::new();
    for container in render.redline() {
        let command = container.args()[0].clone();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), container.config_file()).unwrap();
        // The pod's environment, with Redis and the listener here; the consumer prints
        // instead of writing to an InfluxDB.
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env = container.env();
        env.insert("REDLINE_REDIS_URL".into(), redis.url());
        let listen = if command == "producer" {
            "REDLINE_LISTEN"
        } else {
            "REDLINE_METRICS_LISTEN"
        };
        env.insert(listen.into(), addr.clone());
        if command == "consumer" {
            env.insert("REDLINE_SINK".into(), "stdout".into());
        }
        let mut cmd = redline();
        cmd.arg(&command)
            .arg("--config")
            .arg(file.path())
            .args(container.flags())
            .envs(&env);
        let guard = ChildGuard::spawn(&command, &mut cmd);
        running.push((container, addr, guard, file));
    }
    for (container, addr, guard, _) in &running {
        for probe in ["livenessProbe", "readinessProbe"] {
            let path = text(&container.container[probe]["httpGet"]["path"]);
            let url = format!("http://{addr}{path}");
            let what = format!("{} answers 200 on {path}", container.label());
            wait_until(&what, Duration::from_secs(20), || {
                let url = url.clone();
                async move { matches!(client().get(&url).send().await, Ok(r) if r.status() == 200) }
            })
            .await;
        }
        assert!(!guard.logs().contains("panicked"), "{}", guard.logs());
    }
    // The consumer joined the group under its pod's name.
    let conn = redis.conn().await;
    wait_until(
        "redline-consumer-0 is in the group",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            async move {
                let reply: Result<redis::streams::StreamInfoConsumersReply, _> =
                    redis::cmd("XINFO")
                        .arg("CONSUMERS")
                        .arg(STREAM)
                        .arg(GROUP)
                        .query_async(&mut conn)
                        .await;
                reply.is_ok_and(|r| r.consumers.iter().any(|c| c.name == "redline-consumer-0"))
            }
        },
    )
    .await;
}

#[test]
fn autoscalers_watch_the_group_and_every_partition_stream() {
    let telemetry =
        std::fs::read_to_string(Path::new(ROOT).join("crates/core/src/telemetry.rs")).unwrap();
    let mut seen = BTreeSet::new();
    for render in renders() {
        let Some(consumer) = render
            .redline()
            .into_iter()
            .find(|c| c.args()[0] == "consumer")
        else {
            continue;
        };
        let effective = consumer.effective();
        let group = key(&effective, "consumer.group")
            .as_str()
            .unwrap()
            .to_owned();
        let stream = key(&effective, "consumer.stream")
            .as_str()
            .unwrap()
            .to_owned();
        let partitions = key(&effective, "consumer.partitions").as_integer().unwrap();
        let streams: BTreeSet<String> = if partitions == 1 {
            BTreeSet::from([stream.clone()])
        } else {
            (0..partitions)
                .map(|n| format!("{stream}:{{{n}}}"))
                .collect()
        };
        let url = consumer.env()["REDLINE_REDIS_URL"].clone();
        let trigger_type = if is_sentinel(&url) {
            "redis-sentinel-streams"
        } else if url.contains(',') {
            "redis-cluster-streams"
        } else {
            "redis-streams"
        };
        for scaler in render.all("ScaledObject") {
            let label = format!("{}: ScaledObject", render.name);
            assert_eq!(
                text(&scaler["spec"]["scaleTargetRef"]["kind"]),
                "StatefulSet",
                "{label}"
            );
            assert_eq!(
                text(&scaler["spec"]["scaleTargetRef"]["name"]),
                consumer.name(),
                "{label}"
            );
            assert!(
                scaler["spec"]["minReplicaCount"].as_u64() >= Some(1),
                "{label}: never 0: pending entries need a consumer"
            );
            let triggers = scaler["spec"]["triggers"].as_sequence().unwrap();
            let watched: BTreeSet<String> = triggers
                .iter()
                .map(|t| text(&t["metadata"]["stream"]))
                .collect();
            assert_eq!(
                watched, streams,
                "{label}: one trigger per partition stream"
            );
            assert_eq!(triggers.len(), streams.len(), "{label}");
            for trigger in triggers {
                assert_eq!(text(&trigger["type"]), trigger_type, "{label} for {url}");
                assert_eq!(
                    text(&trigger["metadata"]["consumerGroup"]),
                    group,
                    "{label}"
                );
                assert!(
                    text(&trigger["metadata"]["lagCount"])
                        .parse::<u64>()
                        .is_ok_and(|n| n > 0),
                    "{label}"
                );
            }
            seen.insert("keda");
        }
        for hpa in render.all("HorizontalPodAutoscaler") {
            let label = format!("{}: HorizontalPodAutoscaler", render.name);
            assert_eq!(
                text(&hpa["spec"]["scaleTargetRef"]["name"]),
                consumer.name(),
                "{label}"
            );
            assert!(hpa["spec"]["minReplicas"].as_u64() >= Some(1), "{label}");
            let metric = &hpa["spec"]["metrics"][0]["external"]["metric"];
            let name = text(&metric["name"]);
            assert!(
                telemetry.contains(&format!("\"{name}\"")),
                "{label}: redline exports no {name}"
            );
            assert_eq!(name, "redline_group_lag", "{label}");
            assert_eq!(
                text(&metric["selector"]["matchLabels"]["group"]),
                group,
                "{label}"
            );
            seen.insert("hpa");
        }
        if render
            .all("ScaledObject")
            .chain(render.all("HorizontalPodAutoscaler"))
            .next()
            .is_none()
        {
            let replicas = render.get("StatefulSet", &consumer.name())["spec"]["replicas"].as_u64();
            assert!(
                replicas >= Some(2),
                "{}: consumers without an autoscaler: {replicas:?}",
                render.name
            );
        }
    }
    assert_eq!(seen, BTreeSet::from(["hpa", "keda"]));
}

#[test]
fn the_example_redis_keeps_an_aof_on_a_volume_and_never_evicts() {
    let render = renders().iter().find(|r| r.name == "redis").unwrap();
    let redis = render.get("StatefulSet", "redis");
    let conf_map = render
        .all("ConfigMap")
        .find(|c| c["data"]["redis.conf"].is_string())
        .unwrap();
    let conf: BTreeMap<String, String> = text(&conf_map["data"]["redis.conf"])
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        })
        .collect();
    assert_eq!(conf["appendonly"], "yes");
    assert_eq!(conf["maxmemory-policy"], "noeviction");
    assert!(
        conf.contains_key("maxmemory"),
        "an explicit maxmemory below the memory limit"
    );
    let claims = redis["spec"]["volumeClaimTemplates"].as_sequence().unwrap();
    let mounts = redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap();
    let data = mounts
        .iter()
        .find(|m| text(&m["mountPath"]) == conf["dir"])
        .expect("a volume at `dir`");
    assert!(
        claims.iter().any(|c| c["metadata"]["name"] == data["name"]),
        "`dir` on a PersistentVolumeClaim"
    );
    // What redline connects to in the base is this Redis's Service.
    let base = renders().iter().find(|r| r.name == "base").unwrap();
    let url = base.redline()[0].env()["REDLINE_REDIS_URL"].clone();
    let service = render.get("Service", "redis");
    let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert_eq!(url, format!("redis://redis:{port}/"));
    // KEDA runs in its own namespace: it names the same Service by its cluster DNS name.
    let keda = renders()
        .iter()
        .find(|r| r.name == "overlays/keda")
        .unwrap();
    let namespace = text(&service["metadata"]["namespace"]);
    for scaler in keda.all("ScaledObject") {
        for trigger in scaler["spec"]["triggers"].as_sequence().unwrap() {
            assert_eq!(
                text(&trigger["metadata"]["address"]),
                format!("redis.{namespace}.svc.cluster.local:{port}"),
                "overlays/keda: ScaledObject"
            );
        }
    }
}
