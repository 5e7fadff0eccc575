//! The report: every figure with its unit, its ratio to a baseline measured in the same run,
//! its target, and the command that produced it; printed as a table and written as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Map, Value};

/// The item of `items` whose `key` is the median, the lower one of an even count.
///
/// # Panics
/// When `items` is empty.
pub(crate) fn median_by<T>(items: &[T], key: impl Fn(&T) -> f64) -> &T {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .expect("at least one round")
}

/// One measured figure.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// Stable key, e.g. `ingest.metrics_per_s`.
    pub(crate) key: String,
    /// What it is, for the table.
    pub(crate) label: String,
    /// The value.
    pub(crate) value: f64,
    /// Its unit: `metrics/s`, `MiB`, `ms`, `B`, `ns/line`.
    pub(crate) unit: &'static str,
    /// `value / baseline` and the baseline's key, when there is a baseline.
    pub(crate) ratio: Option<(f64, String)>,
    /// The target and whether it is met.
    pub(crate) target: Option<(String, bool)>,
    /// The command(s) that produced it.
    pub(crate) command: String,
    /// Anything else worth keeping (CPU shares, counts, settings).
    pub(crate) detail: Map<String, Value>,
}

impl Figure {
    /// A figure without ratio, target or detail.
    pub(crate) fn new(key: &str, label: &str, value: f64, unit: &'static str) -> Self {
        Self {
            key: key.to_string(),
            label: label.to_string(),
            value,
            unit,
            ratio: None,
            target: None,
            command: String::new(),
            detail: Map::new(),
        }
    }

    /// Sets the ratio to `baseline` (a figure of this run).
    pub(crate) fn ratio_to(mut self, baseline: &Figure) -> Self {
        if baseline.value > 0.0 {
            self.ratio = Some((self.value / baseline.value, baseline.key.clone()));
        }
        self
    }

    /// Sets the ratio, `ratio` to `baseline` (a figure of this run), measured as a pair in
    /// the same window (the figure's value against a baseline run of its own).
    pub(crate) fn ratio_of(mut self, ratio: f64, baseline: &Figure) -> Self {
        self.ratio = Some((ratio, baseline.key.clone()));
        self
    }

    /// Sets the target text and whether it is met.
    pub(crate) fn target(mut self, text: impl Into<String>, met: bool) -> Self {
        self.target = Some((text.into(), met));
        self
    }

    /// Sets the command.
    pub(crate) fn command(mut self, command: impl Into<String>) -> Self {
        self.command = command.into();
        self
    }

    /// Adds a detail.
    pub(crate) fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut out = json!({
            "key": self.key,
            "label": self.label,
            "value": round(self.value),
            "unit": self.unit,
            "command": self.command,
        });
        if let Some((ratio, baseline)) = &self.ratio {
            out["ratio"] = json!(round(*ratio));
            out["baseline"] = json!(baseline);
        }
        if let Some((text, met)) = &self.target {
            out["target"] = json!(text);
            out["met"] = json!(met);
        }
        if !self.detail.is_empty() {
            out["detail"] = Value::Object(self.detail.clone());
        }
        out
    }
}

fn round(v: f64) -> f64 {
    if v.abs() >= 100.0 {
        v.round()
    } else {
        (v * 1000.0).round() / 1000.0
    }
}

/// All figures of a run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// In the order measured.
    pub(crate) figures: Vec<Figure>,
}

impl Report {
    /// Adds `figure`, prints it at once (a long run shows progress) and returns a copy for
    /// use as a baseline.
    pub(crate) fn add(&mut self, figure: Figure) -> Figure {
        eprintln!("    {}", row(&figure));
        self.figures.push(figure.clone());
        figure
    }

    /// The table; the last column is the cores other processes kept busy meanwhile.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<58} {:>14} {:<10} {:>7}  {:<30} {:<4} {:>5}",
            "figure", "value", "unit", "ratio", "target", "met", "other"
        );
        let _ = writeln!(out, "{}", "-".repeat(135));
        for figure in &self.figures {
            let _ = writeln!(out, "{}", row(figure));
        }
        out
    }

    /// Writes the JSON report to `path`, creating its directory.
    pub(crate) fn write_json(&self, path: &Path, settings: Value) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        let figures: Map<String, Value> = self
            .figures
            .iter()
            .map(|f| (f.key.clone(), f.to_json()))
            .collect();
        let doc = json!({
            "generated_at_unix": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "machine": machine(),
            "settings": settings,
            "figures": figures,
        });
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
        std::fs::write(path, text + "\n")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

fn row(figure: &Figure) -> String {
    let ratio = figure
        .ratio
        .as_ref()
        .map(|(r, _)| format!("{r:.2}×"))
        .unwrap_or_default();
    let (target, met) = match &figure.target {
        Some((text, met)) => (text.as_str(), if *met { "yes" } else { "NO" }),
        None => ("", ""),
    };
    // Cores other processes kept busy during the measurement (a shared machine's noise).
    let other = figure
        .detail
        .get("other_cores")
        .and_then(Value::as_f64)
        .map(|c| format!("{c:.2}"))
        .unwrap_or_default();
    format!(
        "{:<58} {:>14} {:<10} {:>7}  {:<30} {:<4} {:>5}",
        figure.label,
        human(figure.value),
        figure.unit,
        ratio,
        target,
        met,
        other
    )
}

/// `1234567.8` → `1,234,568`; small values keep decimals.
pub(crate) fn human(v: f64) -> String {
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// CPU model and count, kernel, for the JSON.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({ "cpu": model, "cores": cores, "kernel": kernel.trim() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(human(1_234_567.8), "1,234,568");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1.234), "1.23");
    }

    #[test]
    fn the_median_is_the_middle_item_and_the_lower_middle_of_an_even_count() {
        let key = |x: &f64| *x;
        assert_eq!(*median_by(&[0.589, 0.539, 0.478], key), 0.539);
        assert_eq!(*median_by(&[0.478, 0.589, 0.539], key), 0.539);
        assert_eq!(*median_by(&[1.0, 4.0, 2.0, 3.0], key), 2.0);
        assert_eq!(*median_by(&[0.5], key), 0.5);
        // By the key, not by the items' order or value.
        let pairs = [(1, 0.9), (2, 0.1), (3, 0.5)];
        assert_eq!(median_by(&pairs, |p| p.1).0, 3);
    }
}
