//! The docker-compose dev stack (`docker-compose.yml`, `Dockerfile`, `deploy/`): Compose
//! accepts the file, every redline service's command uses only options redline accepts,
//! Prometheus scrapes the ports those commands listen on, and the Grafana dashboard queries
//! only metrics redline exports, in the form `/metrics` renders them.
//!
//! `docker-compose config` (Debian's `docker-compose` package, v1) validates the file without
//! a Docker daemon; the test fails, saying so, when it is not installed. The `sentinel`
//! profile is checked the same way with redline pointed at its sentinels, and its
//! `deploy/sentinel/sentinel.conf` is run by a real `redis-sentinel` that redline queries.

mod fanout;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::ErrorKind,
    process::Command,
    time::Duration,
};

use redline_testkit::{free_port, wait_until, ChildGuard, RedisServer};
use serde::Deserialize;
use serde_norway::Value;

use crate::support::{client, redline, Producer};

/// The repository root, where `docker-compose.yml` is.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The parts of a resolved compose file the tests look at (serde ignores the rest).
#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Deserialize)]
struct Service {
    image: Option<String>,
    build: Option<Value>,
    command: Option<Value>,
    #[serde(default)]
    ports: Vec<Value>,
    deploy: Option<Value>,
    #[serde(default)]
    profiles: Vec<String>,
}

impl Service {
    /// Whether the service runs the redline image (built here, or tagged `redline…`).
    fn is_redline(&self) -> bool {
        self.build.is_some()
            || self
                .image
                .as_deref()
                .is_some_and(|i| i.starts_with("redline"))
    }

    /// The command's words: a YAML list as is, a string split on whitespace.
    fn args(&self, name: &str) -> Vec<String> {
        match &self.command {
            Some(Value::Sequence(items)) => items.iter().map(|v| scalar(v, name)).collect(),
            Some(Value::String(line)) => {
                assert!(
                    !line.contains(['"', '\'', '\\']),
                    "service {name}: write a quoted command as a YAML list: {line}"
                );
                line.split_whitespace().map(str::to_owned).collect()
            }
            other => {
                panic!("service {name}: no usable command ({other:?}); the image's CMD is --help")
            }
        }
    }

    /// The value following `flag` in the command.
    fn flag(&self, name: &str, flag: &str) -> Option<String> {
        let args = self.args(name);
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    }
}

/// A YAML scalar as the string a process would receive.
fn scalar(value: &Value, service: &str) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("service {service}: command item {other:?} is not a scalar"),
    }
}

/// The variable `docker-compose.yml` takes redline's `--redis-url` from.
const REDIS_URL_VARIABLE: &str = "REDLINE_COMPOSE_REDIS_URL";

/// What the `sentinel` profile's README line exports.
const SENTINEL_URL: &str =
    "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/mymaster";

/// `docker-compose config`: the compose file as Compose resolves and validates it.
fn resolved_compose() -> Compose {
    resolved_compose_with(None, None)
}

/// As [`resolved_compose`], with `--profile profile` and [`REDIS_URL_VARIABLE`] set to
/// `redis_url` (unset when `None`).
fn resolved_compose_with(profile: Option<&str>, redis_url: Option<&str>) -> Compose {
    let mut cmd = Command::new("docker-compose");
    cmd.args(["--file", "docker-compose.yml"]);
    if let Some(profile) = profile {
        cmd.args(["--profile", profile]);
    }
    match redis_url {
        Some(url) => cmd.env(REDIS_URL_VARIABLE, url),
        None => cmd.env_remove(REDIS_URL_VARIABLE),
    };
    let output = cmd
        .arg("config")
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|error| {
            if error.kind() == ErrorKind::NotFound {
                panic!(
                    "docker-compose is not installed, and it validates docker-compose.yml: \
                     install Debian's package (`apt-get install docker-compose`; no Docker \
                     daemon needed), or run scripts/test as root, which installs it"
                )
            }
            panic!("cannot run docker-compose: {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "docker-compose config rejects docker-compose.yml ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_norway::from_str(&stdout).unwrap_or_else(|error| {
        panic!("cannot parse docker-compose config output: {error}\n{stdout}")
    })
}

/// The port of a `HOST:PORT` address.
fn port(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("'{addr}' is not HOST:PORT"))
}

#[test]
fn compose_file_passes_docker_compose_config() {
    let compose = resolved_compose();
    let services = &compose.services;
    for name in [
        "redis",
        "producer",
        "consumer",
        "influxdb",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }

    let redis = services["redis"].args("redis").join(" ");
    for setting in ["--appendonly yes", "--maxmemory-policy noeviction"] {
        assert!(
            redis.contains(setting),
            "redis runs without {setting}: {redis}"
        );
    }
    let replicas = services["consumer"]
        .deploy
        .as_ref()
        .and_then(|d| d.get("replicas"))
        .and_then(Value::as_u64);
    assert!(replicas >= Some(2), "consumer replicas: {replicas:?}");

    for (name, service) in services {
        for published in &service.ports {
            let published = scalar(published, name);
            assert!(
                published.starts_with("127.0.0.1:"),
                "service {name} publishes {published} beyond loopback"
            );
        }
    }

    // Prometheus scrapes the ports the commands listen on.
    let producer = services["producer"]
        .flag("producer", "--listen")
        .expect("producer --listen");
    let consumer = services["consumer"]
        .flag("consumer", "--metrics-listen")
        .expect("consumer --metrics-listen");
    let path = format!("{ROOT}/deploy/prometheus/prometheus.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let prometheus: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let jobs = prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let static_targets: Vec<&str> = jobs
        .iter()
        .filter_map(|job| job.get("static_configs")?.as_sequence())
        .flatten()
        .filter_map(|c| c.get("targets")?.as_sequence())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let producer_target = format!("producer:{}", port(&producer));
    assert!(
        static_targets.contains(&producer_target.as_str()),
        "{path}: no {producer_target} in {static_targets:?}"
    );
    let consumer_sd = jobs
        .iter()
        .filter_map(|job| job.get("dns_sd_configs")?.as_sequence())
        .flatten()
        .find(|sd| {
            sd["names"]
                .as_sequence()
                .is_some_and(|n| n.iter().any(|n| n.as_str() == Some("consumer")))
        })
        .unwrap_or_else(|| panic!("{path}: no dns_sd_configs for consumer"));
    assert_eq!(
        consumer_sd["port"].as_u64(),
        Some(u64::from(port(&consumer))),
        "{path}"
    );
}

#[test]
fn compose_commands_use_only_options_redline_accepts() {
    let compose = resolved_compose();
    assert_eq!(
        redline_commands(&compose),
        [
            "consumer-b:consumer",
            "consumer:consumer",
            "producer:producer"
        ],
        "redline services"
    );
    assert_eq!(
        compose.services["producer"]
            .flag("producer", "--redis-url")
            .as_deref(),
        Some("redis://redis:6379/")
    );
}

/// Checks every redline service's command against the real CLI; returns
/// `service:command` for each, sorted.
fn redline_commands(compose: &Compose) -> Vec<String> {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut checked = Vec::new();
    for (name, service) in compose.services.iter().filter(|(_, s)| s.is_redline()) {
        let args = service.args(name);
        // Clap, in the subcommand's own context: every flag exists there and every typed
        // value (enums, numbers) parses. `--help` stops before anything starts.
        let out = redline().args(&args).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "service {name}: `redline {}` is refused:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        // The configuration layer: addresses, URLs, durations, sizes and the sink's
        // requirements, validated as at startup, without connecting to anything.
        if matches!(args[0].as_str(), "producer" | "consumer" | "run") {
            let out = redline()
                .args(["config", "check"])
                .arg(empty.path())
                .args(&args[1..])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "service {name}: `redline {}` has an invalid value:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        checked.push(format!("{name}:{}", args[0]));
    }
    checked.sort();
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sentinel_profile_adds_a_replica_and_three_sentinels_redline_finds_the_master_through()
{
    let compose = resolved_compose_with(Some("sentinel"), Some(SENTINEL_URL));
    let services = &compose.services;
    let mut profiled: Vec<&str> = services
        .iter()
        .filter(|(_, s)| s.profiles.iter().any(|p| p == "sentinel"))
        .map(|(name, _)| name.as_str())
        .collect();
    profiled.sort_unstable();
    assert_eq!(
        profiled,
        ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
    );
    let replica = services["redis-replica"].args("redis-replica").join(" ");
    for setting in [
        "--replicaof redis 6379",
        "--appendonly yes",
        "--maxmemory-policy noeviction",
    ] {
        assert!(replica.contains(setting), "redis-replica: {replica}");
    }
    assert_eq!(
        redline_commands(&compose),
        [
            "consumer-b:consumer",
            "consumer:consumer",
            "producer:producer"
        ]
    );
    for name in ["producer", "consumer"] {
        assert_eq!(
            services[name].flag(name, "--redis-url").as_deref(),
            Some(SENTINEL_URL),
            "{name}"
        );
    }

    // The sentinels' config, as a real redis-sentinel runs it (the Compose hostname and
    // port of `redis` replaced by a local server's): redline finds the master through it.
    let path = format!("{ROOT}/deploy/sentinel/sentinel.conf");
    let conf = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        conf.contains("sentinel monitor mymaster redis 6379 2"),
        "{path}"
    );
    assert!(conf.contains("port 26379\n"), "{path}");
    let redis = RedisServer::start(&[]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("sentinel.conf");
    let conf = conf
        .replace(
            "port 26379\n",
            &format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n",
                dir.path().display()
            ),
        )
        .replace(
            "mymaster redis 6379",
            &format!("mymaster 127.0.0.1 {}", redis.port()),
        );
    std::fs::write(&local, conf).unwrap();
    let sentinel = ChildGuard::spawn("sentinel", Command::new("redis-sentinel").arg(&local));
    let url = format!("redis+sentinel://127.0.0.1:{port}/mymaster");
    wait_until("the sentinel answers", Duration::from_secs(10), || {
        let out = redline().args(["status", "--redis-url", &url]).output();
        async move { out.is_ok_and(|o| o.status.success()) }
    })
    .await;
    let out = redline()
        .args(["status", "--redis-url", &url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with(&format!("Redis master 127.0.0.1:{} (", redis.port())),
        "{table}\n{}",
        sentinel.logs()
    );
}

/// Every `redline_…` metric name in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        serde_json::Value::String(s) if key == "expr" => out.push(s.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let path = format!("{ROOT}/deploy/grafana/dashboards/redline.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(!found.is_empty(), "{path}: no queries");
    let mut names = BTreeSet::new();
    for expr in &found {
        for (at, _) in expr.match_indices("redline_") {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_queries_metrics_redline_exports() {
    // Declared: every name is a constant of redline-core's telemetry module.
    let path = format!("{ROOT}/crates/core/src/telemetry.rs");
    let telemetry = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let declared = |name: &str| telemetry.contains(&format!("\"{name}\""));
    let mut histograms = BTreeSet::new();
    for name in dashboard_metrics() {
        if declared(&name) {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|b| declared(b)))
            .unwrap_or_else(|| {
                panic!("the dashboard queries {name}, which {path} does not declare")
            });
        if name.ends_with("_bucket") {
            histograms.insert(base.to_owned());
        }
    }

    // Rendered: histogram_quantile over `_bucket` needs a Prometheus histogram, not the
    // summary metrics-exporter-prometheus renders when no buckets are configured. One
    // line through a producer and a consumer records both latencies.
    let redis = RedisServer::start(&[]);
    let producer = Producer::start(&redis.url(), &[]).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let consumer = ChildGuard::spawn(
        "consumer",
        redline()
            .args(["consumer", "--redis-url", &redis.url(), "--sink", "stdout"])
            .args([
                "--flush-interval",
                "100ms",
                "--metrics-listen",
                &metrics_addr,
            ]),
    );
    let response = client()
        .post(format!("{}/write?db=telegraf", producer.url))
        .body("cpu,host=compose usage=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let scrape = |url: String| async move {
        match client().get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let consumer_metrics = format!("http://{metrics_addr}/metrics");
    wait_until(
        "the consumer wrote the line",
        Duration::from_secs(15),
        || {
            let scraped = scrape(consumer_metrics.clone());
            async move { scraped.await.contains("redline_metrics_written_total 1") }
        },
    )
    .await;
    let rendered =
        scrape(format!("{}/metrics", producer.url)).await + &scrape(consumer_metrics).await;
    for base in &histograms {
        assert!(
            rendered.contains(&format!("# TYPE {base} histogram")),
            "the dashboard uses {base}_bucket, but /metrics does not render {base} as a \
             histogram:\n{rendered}\n{}",
            consumer.logs()
        );
    }
}
