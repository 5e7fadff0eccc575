//! The README's metrics table and the Grafana dashboard against what a producer and a
//! consumer expose at `/metrics` after a known load: names, types, labels, label values.

use std::collections::BTreeSet;
use std::time::Duration;

use redline_testkit::wait_until;
use serde_json::Value;

use super::exposition::{merged, readme_metrics, Loaded, Metric, LOADED};
use super::{read, root};
use crate::support::{sample, scrape};

/// Labels whose values are open sets (paths, status codes, stream and group names): the
/// README names the label, not every value.
const OPEN_LABELS: &[&str] = &["endpoint", "status", "stream", "group"];

/// Metrics only an InfluxDB sink exposes (this stack's consumer writes a file): their
/// exposition is asserted by the test named beside each.
const INFLUX_ONLY: &[(&str, &str)] = &[(
    "redline_sink_url_up",
    "fanout::failover::when_the_first_influxdb_stops_the_second_takes_every_write_and_none_is_lost",
)];

#[tokio::test(flavor = "multi_thread")]
async fn readme_metrics_table_is_what_producer_and_consumer_expose() {
    let stack = Loaded::start().await;
    let (produced, consumed) = stack.scrape().await;
    let exposed = merged(&[&produced, &consumed]);
    let documented = readme_metrics();
    let mut wrong = Vec::new();
    for (name, doc) in &documented {
        if INFLUX_ONLY.iter().any(|(only, _)| only == name) {
            continue;
        }
        let Some(metric) = exposed.get(name) else {
            wrong.push(format!("{name}: in the README, exposed by neither process"));
            continue;
        };
        if metric.kind != doc.kind {
            wrong.push(format!(
                "{name}: the README says {}, it is a {}",
                doc.kind, metric.kind
            ));
        }
        let labels: BTreeSet<String> = metric.labels.keys().cloned().collect();
        if labels != doc.labels {
            wrong.push(format!(
                "{name}: the README says labels {:?}, exposed {labels:?}",
                doc.labels
            ));
        }
        for (label, values) in &metric.labels {
            if OPEN_LABELS.contains(&label.as_str()) {
                continue;
            }
            for value in values
                .iter()
                .filter(|v| !doc.row.contains(&format!("`{v}`")))
            {
                wrong.push(format!(
                    "{name}: {label}=\"{value}\" is exposed, not in the README's row"
                ));
            }
        }
    }
    for name in exposed.keys().filter(|n| !documented.contains_key(*n)) {
        wrong.push(format!("{name}: exposed, missing from the README's table"));
    }
    assert!(
        wrong.is_empty(),
        "README metrics table vs /metrics:\n{}\n\nproducer:\n{produced}\nconsumer:\n{consumed}",
        wrong.join("\n")
    );
    // The load is counted, not only registered.
    assert_eq!(
        sample(&produced, "redline_lines_accepted_total", ""),
        Some(LOADED as f64)
    );
    assert_eq!(
        sample(
            &produced,
            "redline_lines_rejected_total",
            "reason=\"parse\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&consumed, "redline_metrics_acked_total", ""),
        Some(LOADED as f64)
    );
}

/// Every query of the dashboard: (panel title, expression).
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(value: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((title.to_owned(), expr.to_owned()));
                }
                map.values().for_each(|v| walk(v, title, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard(), "", &mut out);
    assert!(out.len() >= 20, "only {} dashboard queries", out.len());
    out
}

/// `deploy/grafana/dashboards/redline.json`.
fn dashboard() -> Value {
    let path = root().join("deploy/grafana/dashboards/redline.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `redline_…` metric names in `expr`, each with the text right after it.
fn names_in(expr: &str) -> Vec<(String, &str)> {
    expr.match_indices("redline_")
        .map(|(at, _)| {
            let len = expr[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - at);
            (expr[at..at + len].to_owned(), &expr[at + len..])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_queries_only_metrics_and_labels_redline_exposes() {
    let stack = Loaded::start().await;
    let (produced, consumed) = stack.scrape().await;
    let exposed = merged(&[&produced, &consumed]);
    let documented = readme_metrics();
    let mut wrong = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let mut used: Vec<&Metric> = Vec::new();
        for (name, after) in names_in(&expr) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|b| exposed.get(*b).is_some_and(|m| m.kind == "histogram"))
                .unwrap_or(&name);
            let Some(metric) = exposed.get(base) else {
                wrong.push(format!("{panel}: {name} is exposed by neither process"));
                continue;
            };
            if !documented.contains_key(base) {
                wrong.push(format!("{panel}: {base} is not in the README's table"));
            }
            used.push(metric);
            let Some(selector) = after.strip_prefix('{') else {
                continue;
            };
            let selector = &selector[..selector.find('}').unwrap_or(selector.len())];
            for (label, op, value) in super::exposition::matchers(selector) {
                match metric.labels.get(&label) {
                    None => wrong.push(format!("{panel}: {base} has no label {label}")),
                    Some(values) if op == "=" && !values.contains(&value) => wrong.push(format!(
                        "{panel}: {base}{{{label}=\"{value}\"}} matches nothing exposed ({values:?})"
                    )),
                    Some(_) => {}
                }
            }
        }
        for (at, _) in expr.match_indices("by (") {
            let list = &expr[at + 4..];
            let list = &list[..list.find(')').unwrap_or(list.len())];
            for label in list.split(',').map(str::trim) {
                let known = ["le", "instance", "job"].contains(&label)
                    || used.iter().any(|m| m.labels.contains_key(label));
                if !known {
                    wrong.push(format!(
                        "{panel}: `by ({label})` is a label of no metric in {expr}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "dashboard queries:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn buffer_fill_follows_the_backlog_when_no_write_comes() {
    // Before any consumer: the whole stream is the backlog, however long ago it was written.
    let stack = Loaded::start_with(|producer| async move {
        let produced = scrape(&producer).await;
        assert_eq!(
            sample(&produced, "redline_buffer_entries", ""),
            Some(LOADED as f64),
            "{produced}"
        );
        assert_eq!(
            sample(&produced, "redline_buffer_limit_entries", ""),
            Some(1000.0)
        );
    })
    .await;
    // Delivered and acknowledged, and no write since: the next scrape says 0.
    let url = stack.producer.url.clone();
    wait_until(
        "the buffer fill drops to 0",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move { sample(&scrape(&url).await, "redline_buffer_entries", "") == Some(0.0) }
        },
    )
    .await;
}

#[test]
fn consumers_up_is_green_only_at_the_compose_replica_count() {
    let compose: serde_norway::Value =
        serde_norway::from_str(&read(&root().join("docker-compose.yml"))).unwrap();
    let replicas = compose["services"]["consumer"]["deploy"]["replicas"]
        .as_u64()
        .expect("deploy.replicas of the consumer service");
    let dashboard = dashboard();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Consumers up"))
        })
        .expect("a \"Consumers up\" panel");
    let defaults = &panel["fieldConfig"]["defaults"];
    assert_eq!(
        defaults["max"].as_u64(),
        Some(replicas),
        "max = the expected replicas"
    );
    let thresholds = &defaults["thresholds"];
    assert_eq!(
        thresholds["mode"], "percentage",
        "relative to max: {thresholds}"
    );
    let steps = thresholds["steps"].as_array().unwrap();
    for step in steps {
        let green = step["color"] == "green";
        let at_full = step["value"].as_f64() == Some(100.0);
        assert_eq!(
            green, at_full,
            "green only at 100% of {replicas}: {thresholds}"
        );
    }
    assert!(steps.iter().any(|s| s["color"] == "green"), "{thresholds}");
}

#[test]
fn dashboard_panels_show_what_the_readme_says_they_show() {
    let queries = dashboard_queries();
    let panel = |title: &str| -> Vec<String> {
        let exprs: Vec<String> = queries
            .iter()
            .filter(|(t, _)| t == title)
            .map(|(_, e)| e.clone())
            .collect();
        assert!(!exprs.is_empty(), "no panel {title:?}");
        exprs
    };
    let shows = |title: &str, metric: &str| panel(title).iter().any(|e| e.contains(metric));
    assert!(
        shows("Written and acked", "redline_metrics_dead_lettered_total"),
        "acked = written + dead-lettered: the panel shows dead letters"
    );
    assert!(
        shows("Buffer fill", "redline_buffer_limit_entries"),
        "the limit line"
    );
    assert!(
        shows(
            "Memory for requests",
            "redline_producer_inflight_budget_bytes"
        ),
        "the budget line"
    );
    assert!(shows("Writes waiting", "redline_producer_writes_waiting"));
    for expr in panel("Sink write duration") {
        assert!(
            expr.contains("outcome=\"ok\""),
            "accepted writes only: {expr}"
        );
    }
    let readme = read(&root().join("README.md")).replace('\n', " ");
    for (title, _) in &queries {
        assert!(
            readme.contains(&format!("*{title}*")),
            "the README's dashboard notes do not explain the panel {title:?}"
        );
    }
}
