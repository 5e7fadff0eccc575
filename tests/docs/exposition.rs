//! What the metrics tests read: the Prometheus text a process exposes, the README's metrics
//! table, and a producer and a consumer after a known load.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redline_testkit::{wait_until, ChildGuard, RedisServer};

use super::{read, root};
use crate::support::{self, client, metrics_address, scrape, Producer, GROUP};

/// One metric: its type and the values each of its labels took (`le` left out).
#[derive(Debug, Default, Clone)]
pub(super) struct Metric {
    /// `counter`, `gauge` or `histogram`.
    pub(super) kind: String,
    /// Label name → the values seen.
    pub(super) labels: BTreeMap<String, BTreeSet<String>>,
}

/// The metrics of a Prometheus text exposition, by name (a histogram's `_bucket`, `_sum`
/// and `_count` samples under its own name).
pub(super) fn exposition(text: &str) -> BTreeMap<String, Metric> {
    let mut metrics: BTreeMap<String, Metric> = BTreeMap::new();
    for rest in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = rest.split_whitespace();
        if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
            metrics.entry(name.to_owned()).or_default().kind = kind.to_owned();
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.strip_suffix(suffix))
            .find(|base| metrics.get(*base).is_some_and(|m| m.kind == "histogram"))
            .unwrap_or(sample);
        let metric = metrics
            .get_mut(base)
            .unwrap_or_else(|| panic!("a sample without its # TYPE: {line}"));
        if line[end..].starts_with('{') {
            let close = line.rfind('}').expect("a closing brace");
            for (key, _, value) in matchers(&line[end + 1..close]) {
                if key != "le" {
                    metric.labels.entry(key).or_default().insert(value);
                }
            }
        }
    }
    metrics
}

/// Both processes' metrics in one map: labels and values merged; a name exposed with two
/// types panics.
pub(super) fn merged(texts: &[&str]) -> BTreeMap<String, Metric> {
    let mut all: BTreeMap<String, Metric> = BTreeMap::new();
    for text in texts {
        for (name, metric) in exposition(text) {
            let entry = all.entry(name.clone()).or_insert_with(|| Metric {
                kind: metric.kind.clone(),
                ..Metric::default()
            });
            assert_eq!(entry.kind, metric.kind, "{name} exposed with two types");
            for (label, values) in metric.labels {
                entry.labels.entry(label).or_default().extend(values);
            }
        }
    }
    all
}

/// `a="x",b=~"y"` → (label, operator, value) triples.
pub(super) fn matchers(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(op_at) = rest.find(['=', '!']) {
        let key = rest[..op_at]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_owned();
        let after = &rest[op_at..];
        let op_len = after.find('"').unwrap_or(after.len());
        let op = after[..op_len].trim().to_owned();
        let value_start = op_at + op_len + 1;
        let Some(value_len) = rest.get(value_start..).and_then(|v| v.find('"')) else {
            break;
        };
        out.push((
            key,
            op,
            rest[value_start..value_start + value_len].to_owned(),
        ));
        rest = &rest[value_start + value_len + 1..];
    }
    out
}

/// A metric as the README's table documents it.
#[derive(Debug)]
pub(super) struct Documented {
    /// Its type.
    pub(super) kind: String,
    /// Its label names.
    pub(super) labels: BTreeSet<String>,
    /// The whole table row, where its known label values are named in backticks.
    pub(super) row: String,
}

/// The README's `/metrics` table, by metric name.
pub(super) fn readme_metrics() -> BTreeMap<String, Documented> {
    let readme = read(&root().join("README.md"));
    let table = readme
        .split("| metric | type | what |")
        .nth(1)
        .expect("the README's metrics table");
    let mut documented = BTreeMap::new();
    for row in table
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("|---"))
    {
        let cells: Vec<&str> = row
            .split(" | ")
            .map(|c| c.trim_matches('|').trim())
            .collect();
        assert!(
            cells.len() >= 3,
            "a metrics row with fewer than 3 cells: {row}"
        );
        let names: Vec<&str> = cells[0].split('`').skip(1).step_by(2).collect();
        let kinds: Vec<&str> = cells[1].split('/').map(str::trim).collect();
        assert!(
            kinds.len() == 1 || kinds.len() == names.len(),
            "types do not match the names: {row}"
        );
        for (i, span) in names.iter().enumerate() {
            let (name, labels) = match span.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (*span, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            let kind = kinds[if kinds.len() == 1 { 0 } else { i }].to_owned();
            let doc = Documented {
                kind,
                labels,
                row: row.to_owned(),
            };
            assert!(
                documented.insert(name.to_owned(), doc).is_none(),
                "{name} is in the table twice"
            );
        }
    }
    assert!(
        documented.len() >= 20,
        "only {} metrics found",
        documented.len()
    );
    documented
}

/// A producer (`--buffer-limit 1000`) and a file consumer on one Redis, after a known load:
/// a v1 write of 10 lines with one bad, a v2 write of 5 lines, all delivered.
pub(super) struct Loaded {
    /// Kept running for the test.
    pub(super) _redis: RedisServer,
    /// The producer.
    pub(super) producer: Producer,
    /// The consumer, serving `--metrics-listen`.
    pub(super) consumer: ChildGuard,
    /// Base URL of the consumer's `--metrics-listen`.
    pub(super) consumer_url: String,
    /// The consumer's file lives here.
    pub(super) _dir: tempfile::TempDir,
}

/// Metrics stored by [`Loaded::start`].
pub(super) const LOADED: usize = 15;

impl Loaded {
    /// Starts the stack; the consumer starts only after the writes when `before_consumer`
    /// is given, which runs in between.
    pub(super) async fn start_with<F, Fut>(before_consumer: F) -> Self
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let redis = RedisServer::start(&[]);
        let producer = Producer::start(&redis.url(), &["--buffer-limit", "1000"]).await;
        let mut v1 = support::timestamped_lines(0, 10);
        v1.push_str("not line protocol\n");
        let answer = support::post(&format!("{}/write?db=db0", producer.url), v1).await;
        assert_eq!(answer.status(), 400, "a partial write");
        let v2 = support::timestamped_lines(10, 5);
        let answer = support::post(&format!("{}/api/v2/write?bucket=db0", producer.url), v2).await;
        assert_eq!(answer.status(), 204);
        before_consumer(producer.url.clone()).await;

        let dir = tempfile::tempdir().unwrap();
        let (listen, consumer_url) = metrics_address();
        let consumer = support::file_consumer(
            &redis.url(),
            GROUP,
            &dir.path().join("out.lp"),
            &["--metrics-listen", &listen],
        );
        let written = format!("redline_metrics_written_total {LOADED}\n");
        let metrics = format!("{consumer_url}/metrics");
        wait_until(
            "the consumer wrote the load",
            Duration::from_secs(30),
            || {
                let (metrics, written) = (metrics.clone(), written.clone());
                async move {
                    match client().get(&metrics).send().await {
                        Ok(r) => r.text().await.unwrap_or_default().contains(&written),
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
        support::wait_nothing_pending(&redis.conn().await).await;
        Self {
            _redis: redis,
            producer,
            consumer,
            consumer_url,
            _dir: dir,
        }
    }

    /// [`Loaded::start_with`] with nothing between the writes and the consumer.
    pub(super) async fn start() -> Self {
        Self::start_with(|_| async {}).await
    }

    /// What the producer and the consumer expose now.
    pub(super) async fn scrape(&self) -> (String, String) {
        (
            scrape(&self.producer.url).await,
            scrape(&self.consumer_url).await,
        )
    }
}
