//! `influxd.conf` for a test server: everything in its directory, every service a test did
//! not ask for off.

use std::fs;
use std::path::Path;

use super::{InfluxOptions, CONFIG};

/// Writes `influxd.conf` into `dir`. Only keys InfluxDB 1.6 knows are used (it ignores
/// unknown ones silently, so a typo here would go unnoticed).
pub(super) fn write_config(dir: &Path, http_port: u16, rpc_port: u16, options: &InfluxOptions) {
    let path = |name: &str| toml_string(&dir.join(name));
    let data = |name: &str| match &options.data_root {
        Some(root) => toml_string(&root.join(name)),
        None => path(name),
    };
    let config = format!(
        r#"# Upstream 1.x reads reporting-disabled; Debian's build renamed it reporting-enabled
# (default false). Unknown keys are ignored, so both are set.
reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = {meta}

[data]
  dir = {data}
  wal-dir = {wal}
  wal-fsync-delay = "0s"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = {http_log}
  pprof-enabled = false
  max-body-size = {max_body}

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  # "info" at least: launch() waits for the "Listening on HTTP" line.
  level = "info"
  suppress-logo = true
"#,
        meta = path("meta"),
        data = data("data"),
        wal = data("wal"),
        auth = options.admin.is_some(),
        http_log = options.http_log_enabled,
        max_body = options.max_body_size,
    );
    let file = dir.join(CONFIG);
    fs::write(&file, config)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", file.display()));
}

/// `path` as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
