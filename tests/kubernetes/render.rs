//! Rendering `deploy/kubernetes` with `kubectl kustomize`, and reading what a rendered redline
//! container runs: its arguments, variables and mounted config file, and what `redline config
//! check` makes of them together.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::ErrorKind,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use serde::Deserialize;
use serde_norway::Value;

use super::ROOT;
use crate::support::redline;

/// One rendered kustomization: its directory below `deploy/kubernetes` and its objects.
pub(super) struct Render {
    pub(super) name: String,
    pub(super) objects: Vec<Value>,
}

impl Render {
    /// The objects of `kind`.
    pub(super) fn all<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The object of `kind` named `name`.
    pub(super) fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    /// Every container of the redline image, with its workload.
    pub(super) fn redline(&self) -> Vec<Container<'_>> {
        let mut found = Vec::new();
        for workload in self.all("Deployment").chain(self.all("StatefulSet")) {
            let containers = workload["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .expect("containers");
            for container in containers {
                if text(&container["image"]).starts_with("redline") {
                    found.push(Container {
                        render: self,
                        workload,
                        container,
                    });
                }
            }
        }
        found
    }
}

/// A YAML scalar as text ("" when absent).
pub(super) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Every kustomization below `deploy/kubernetes` that is not a Component, rendered once.
pub(super) fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let top = Path::new(ROOT).join("deploy/kubernetes");
        let mut dirs = Vec::new();
        collect_kustomizations(&top, &mut dirs);
        dirs.sort();
        dirs.iter()
            .map(|dir| Render {
                name: dir.strip_prefix(&top).unwrap().display().to_string(),
                objects: kustomize(dir),
            })
            .collect()
    })
}

fn collect_kustomizations(dir: &Path, out: &mut Vec<PathBuf>) {
    let file = dir.join("kustomization.yaml");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let kustomization: Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if kustomization["kind"] != "Component" {
            out.push(dir.to_owned());
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_kustomizations(&path, out);
        }
    }
}

/// `kubectl kustomize DIR`: the objects it renders.
fn kustomize(dir: &Path) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|error| {
            if error.kind() == ErrorKind::NotFound {
                panic!(
                    "kubectl is not installed, and it renders deploy/kubernetes (`kubectl \
                     kustomize`, no cluster needed): install kubectl 1.21 or later (Debian's \
                     package is kubernetes-client), or run scripts/test as root, which \
                     installs that package"
                )
            }
            panic!("cannot run kubectl: {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed ({}):\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_norway::Deserializer::from_str(&stdout)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A redline container in a rendered workload.
pub(super) struct Container<'a> {
    pub(super) render: &'a Render,
    pub(super) workload: &'a Value,
    pub(super) container: &'a Value,
}

impl Container<'_> {
    pub(super) fn label(&self) -> String {
        format!(
            "{}: {} {}",
            self.render.name,
            text(&self.workload["kind"]),
            self.name()
        )
    }

    /// The workload's name.
    pub(super) fn name(&self) -> String {
        text(&self.workload["metadata"]["name"])
    }

    pub(super) fn pod(&self) -> &Value {
        &self.workload["spec"]["template"]["spec"]
    }

    /// The arguments to the image's `ENTRYPOINT ["redline"]`.
    pub(super) fn args(&self) -> Vec<String> {
        assert!(
            self.container["command"].is_null(),
            "{}: keep the image's entrypoint; set `args`",
            self.label()
        );
        let args = self.container["args"].as_sequence();
        args.unwrap_or_else(|| panic!("{}: no args (the image's CMD is --help)", self.label()))
            .iter()
            .map(text)
            .collect()
    }

    /// The subcommand's flags, without `--config FILE`.
    pub(super) fn flags(&self) -> Vec<String> {
        let args = self.args();
        let mut flags = Vec::new();
        let mut rest = args[1..].iter();
        while let Some(arg) = rest.next() {
            if arg == "--config" {
                rest.next();
            } else {
                flags.push(arg.clone());
            }
        }
        flags
    }

    /// The TOML text of `--config`, from the ConfigMap mounted at its directory.
    pub(super) fn config_file(&self) -> String {
        let args = self.args();
        let at = args.iter().position(|a| a == "--config");
        let path = Path::new(&args[at.expect("--config") + 1]);
        let mounts = self.container["volumeMounts"].as_sequence().unwrap();
        let mount = mounts
            .iter()
            .find(|m| Path::new(&text(&m["mountPath"])) == path.parent().unwrap())
            .unwrap_or_else(|| panic!("{}: nothing mounted for {}", self.label(), path.display()));
        let volumes = self.pod()["volumes"].as_sequence().unwrap();
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        let config_map = self
            .render
            .get("ConfigMap", &text(&volume["configMap"]["name"]));
        let key = path.file_name().unwrap().to_str().unwrap();
        config_map["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the ConfigMap has no {key}", self.label()))
            .to_owned()
    }

    /// The `REDLINE_*` names the container sets: its `env` and the keys of its `envFrom`.
    pub(super) fn env_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.env_from().into_keys().collect();
        for var in self.container["env"].as_sequence().into_iter().flatten() {
            names.insert(text(&var["name"]));
        }
        names.retain(|n| n.starts_with("REDLINE_"));
        names
    }

    /// The variables of the ConfigMaps in `envFrom`.
    pub(super) fn env_from(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in self.container["envFrom"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let name = text(&source["configMapRef"]["name"]);
            assert!(!name.is_empty(), "{}: envFrom {source:?}", self.label());
            let data = self.render.get("ConfigMap", &name)["data"].as_mapping();
            for (key, value) in data.into_iter().flatten() {
                env.insert(text(key), text(value));
            }
        }
        env
    }

    /// The environment the process gets when no optional Secret exists: `envFrom`, then
    /// `env` literals and the pod's name (`<statefulset>-0`) for `metadata.name`.
    pub(super) fn env(&self) -> BTreeMap<String, String> {
        let mut env = self.env_from();
        for var in self.container["env"].as_sequence().into_iter().flatten() {
            let name = text(&var["name"]);
            let from = &var["valueFrom"];
            if !var["value"].is_null() {
                env.insert(name, text(&var["value"]));
            } else if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
                assert_eq!(
                    field,
                    "metadata.name",
                    "{}: {name}: only the pod's name is modelled here",
                    self.label()
                );
                env.insert(name, format!("{}-0", self.name()));
            } else {
                // No Secret is rendered (the user creates it), so every key is optional.
                assert!(
                    from["secretKeyRef"]["optional"] == true,
                    "{}: {name} from {from:?}: only optional Secret keys or literals",
                    self.label()
                );
            }
        }
        env
    }

    /// `redline config check` of the mounted file with the container's flags and variables:
    /// the effective configuration, or a panic naming what redline refuses.
    pub(super) fn effective(&self) -> toml::Table {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), self.config_file()).unwrap();
        let env = self.env();
        // A Sentinel URL is checked by redline itself below; the form DESIGN.md names, here.
        if let Some(url) = env.get("REDLINE_REDIS_URL").filter(|u| is_sentinel(u)) {
            assert_sentinel_form(url, &self.label());
        }
        let out = config_check(file.path(), &self.flags(), &env);
        assert!(
            out.status.success(),
            "{}: `redline {}` with {env:?} and its config file is refused:\n{}",
            self.label(),
            self.args().join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
    }
}

/// `redline config check FILE FLAGS…` with exactly the `REDLINE_*` variables of `env`.
pub(super) fn config_check(
    file: &Path,
    flags: &[String],
    env: &BTreeMap<String, String>,
) -> Output {
    let mut cmd = redline();
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("REDLINE_")) {
        cmd.env_remove(name);
    }
    cmd.args(["config", "check"])
        .arg(file)
        .args(flags)
        .envs(env)
        .output()
        .unwrap()
}

pub(super) fn is_sentinel(url: &str) -> bool {
    url.starts_with("redis+sentinel://")
}

/// `redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT…]/MASTER_NAME`.
fn assert_sentinel_form(url: &str, label: &str) {
    let rest = url.strip_prefix("redis+sentinel://").unwrap();
    let (hosts, master) = rest.rsplit_once('/').unwrap_or((rest, ""));
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let valid = !master.is_empty()
        && !master.contains(['/', ','])
        && hosts.split(',').all(|h| {
            h.rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    assert!(
        valid,
        "{label}: {url} is not redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT…]/MASTER_NAME"
    );
}

/// The `[env: REDLINE_…]` names in `redline <command> --help`.
pub(super) fn env_options(command: &str) -> BTreeSet<String> {
    let out = redline().args([command, "--help"]).output().unwrap();
    assert!(out.status.success(), "redline {command} --help");
    let help = String::from_utf8_lossy(&out.stdout);
    help.match_indices("[env: ")
        .map(|(at, _)| {
            help[at + 6..]
                .chars()
                .take_while(|c| *c != ']')
                .collect::<String>()
        })
        .collect()
}

/// A key of the effective configuration, e.g. `consumer.sink.timeout`.
pub(super) fn key<'a>(config: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut parts = path.split('.');
    let first = &config[parts.next().unwrap()];
    parts.fold(first, |value, part| &value[part])
}

/// A duration of the effective configuration (`"10s"`, `"500ms"`), in seconds.
pub(super) fn seconds(config: &toml::Table, path: &str) -> f64 {
    let value = key(config, path).as_str().unwrap();
    match value.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().unwrap() / 1000.0,
        None => value.strip_suffix('s').unwrap().parse().unwrap(),
    }
}
