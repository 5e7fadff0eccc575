//! The ops commands' reports as padded tables for a terminal: what `redline status`,
//! `pending`, `claim`, `consumers`, `dlq` and `trim` print without `--json`. The layout
//! depends only on the report, so it can be compared in snapshot tests; absent values print
//! as `-`.

mod sentinel;
mod status;

use std::fmt::Display;

use redline_streams::{
    ClaimReport, ConsumerInfo, ConsumersReport, DeadLetter, DlqList, PendingReport, PurgeReport,
    ReplayReport, TrimReport,
};

pub(crate) use self::sentinel::master_line;

/// A report that prints as a table.
pub(crate) trait Render {
    /// The table, ending in a newline.
    fn render_human(&self) -> String;
}

/// How much of a reason a table shows.
const REASON_WIDTH: usize = 60;
/// How much of a line a table shows.
const LINE_WIDTH: usize = 80;
/// Room kept for a duration (`59m59s`, `23h59m`, `99d23h`): idle times and sizes change
/// between two runs, or two refreshes of `status --watch`, and must not move the columns.
const DURATION_WIDTH: usize = 6;
/// Room kept for a size (`1023.9 KiB`), for the same reason.
const BYTES_WIDTH: usize = 10;

/// Left for text, right for numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}
use Align::{Left, Right};

/// A table: a header row, then rows, columns two spaces apart, no trailing blanks.
struct Table {
    head: Vec<(&'static str, Align)>,
    /// The least width of each column, whatever its cells.
    min: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[(&'static str, Align)]) -> Self {
        Self {
            head: head.to_vec(),
            min: vec![0; head.len()],
            rows: Vec::new(),
        }
    }

    /// Keeps at least `width` characters for column `name`.
    fn reserve(mut self, name: &str, width: usize) -> Self {
        if let Some(i) = self.head.iter().position(|(h, _)| *h == name) {
            self.min[i] = width;
        }
        self
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .chain([self.head[i].0.len(), self.min[i]])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.head.len()).map(width).collect();
        let heads: Vec<String> = self.head.iter().map(|(h, _)| h.to_string()).collect();
        for cells in std::iter::once(&heads).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.head.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = " ".repeat(widths[i] - cell.chars().count().min(widths[i]));
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Left => line.extend([cell, &pad]),
                    Right => line.extend([pad.as_str(), cell]),
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// `value`, or `-` when absent.
fn opt<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Milliseconds as `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`.
pub(crate) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{}.{}s", secs, (ms % 1000) / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Bytes as `512 B`, `1.5 KiB`, `2.0 MiB`, `1.1 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// At most `max` characters of `text`, on one line, `…` marking a cut.
fn clip(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Render for PendingReport {
    /// A table per consumer, then a table of entries.
    fn render_human(&self) -> String {
        let mut out = String::new();
        if self.consumers.is_empty() && self.entries.is_empty() {
            out.push_str("nothing pending\n");
            return out;
        }
        let mut consumers = Table::new(&[
            ("STREAM", Left),
            ("GROUP", Left),
            ("CONSUMER", Left),
            ("PENDING", Right),
            ("OLDEST ID", Left),
            ("OLDEST IDLE", Right),
        ])
        .reserve("OLDEST IDLE", DURATION_WIDTH);
        for c in &self.consumers {
            consumers.row(vec![
                c.stream.clone(),
                c.group.clone(),
                c.consumer.clone(),
                c.pending.to_string(),
                opt(c.oldest_id.as_ref()),
                opt(c.oldest_idle_ms.map(duration)),
            ]);
        }
        consumers.render(&mut out);
        out.push('\n');
        let show = self.entries.iter().any(|e| e.lp.is_some());
        let mut head = vec![
            ("ID", Left),
            ("STREAM", Left),
            ("GROUP", Left),
            ("CONSUMER", Left),
            ("IDLE", Right),
            ("DELIVERIES", Right),
        ];
        if show {
            head.push(("LINE", Left));
        }
        let mut entries = Table::new(&head).reserve("IDLE", DURATION_WIDTH);
        for e in &self.entries {
            let mut row = vec![
                e.id.clone(),
                e.stream.clone(),
                e.group.clone(),
                e.consumer.clone(),
                duration(e.idle_ms),
                e.deliveries.to_string(),
            ];
            if show {
                row.push(opt(e.lp.as_deref().map(|lp| clip(lp, LINE_WIDTH))));
            }
            entries.row(row);
        }
        if entries.rows.is_empty() {
            out.push_str("no pending entry matches\n");
        } else {
            entries.render(&mut out);
        }
        if self.more {
            out.push_str("(more entries match; raise --count to list them)\n");
        }
        out
    }
}

impl Render for ClaimReport {
    /// What moved, and which ids did not.
    fn render_human(&self) -> String {
        let mut out = format!(
            "moved {} to consumer '{}' of group '{}'\n",
            plural(self.moved, "entry", "entries"),
            self.to,
            self.group
        );
        if !self.not_claimed.is_empty() {
            out.push_str(&format!(
                "not moved (not pending in the group, or not idle long enough): {}\n",
                self.not_claimed.join(" ")
            ));
        }
        if self.deleted > 0 {
            out.push_str(&format!(
                "dropped {} whose stream entry no longer exists\n",
                plural(self.deleted, "pending entry", "pending entries")
            ));
        }
        out
    }
}

fn consumer_table(list: &[ConsumerInfo], out: &mut String) {
    let mut table = Table::new(&[
        ("STREAM", Left),
        ("GROUP", Left),
        ("CONSUMER", Left),
        ("PENDING", Right),
        ("IDLE", Right),
        ("INACTIVE", Right),
    ])
    .reserve("IDLE", DURATION_WIDTH)
    .reserve("INACTIVE", DURATION_WIDTH);
    for c in list {
        table.row(vec![
            c.stream.clone(),
            c.group.clone(),
            c.name.clone(),
            c.pending.to_string(),
            duration(c.idle_ms),
            opt(c.inactive_ms.map(duration)),
        ]);
    }
    table.render(out);
}

impl Render for ConsumersReport {
    /// The consumers left, then those removed.
    fn render_human(&self) -> String {
        let mut out = String::new();
        if self.consumers.is_empty() {
            out.push_str("no consumers\n");
        } else {
            consumer_table(&self.consumers, &mut out);
        }
        if let Some(idle) = self.prune_idle_ms {
            out.push('\n');
            out.push_str(&format!(
                "removed {} idle for {} or more and holding nothing pending\n",
                plural(self.removed.len() as u64, "consumer", "consumers"),
                duration(idle)
            ));
            if !self.removed.is_empty() {
                consumer_table(&self.removed, &mut out);
            }
        }
        out
    }
}

impl Render for DlqList {
    /// A count, then a table of the letters.
    fn render_human(&self) -> String {
        let mut out = format!(
            "{} in {}",
            plural(self.length, "dead letter", "dead letters"),
            self.dlq
        );
        if (self.letters.len() as u64) < self.length {
            out.push_str(&format!(", the oldest {} shown", self.letters.len()));
        }
        out.push('\n');
        if self.letters.is_empty() {
            return out;
        }
        out.push('\n');
        let mut table = Table::new(&[
            ("ID", Left),
            ("DELIVERIES", Right),
            ("DB", Left),
            ("REASON", Left),
            ("LINE", Left),
        ]);
        for l in &self.letters {
            table.row(vec![
                l.id.clone(),
                opt(l.deliveries),
                opt(l.db.as_ref()),
                opt(l.reason.as_deref().map(|r| clip(r, REASON_WIDTH))),
                opt(l.lp.as_deref().map(|lp| clip(lp, LINE_WIDTH))),
            ]);
        }
        table.render(&mut out);
        out
    }
}

impl Render for DeadLetter {
    /// Every field on its own line, values in full.
    fn render_human(&self) -> String {
        let rows = [
            ("id", Some(self.id.clone())),
            ("lp", self.lp.clone()),
            ("db", self.db.clone()),
            ("rp", self.rp.clone()),
            ("reason", self.reason.clone()),
            ("deliveries", self.deliveries.map(|d| d.to_string())),
            ("source_stream", self.source_stream.clone()),
            ("source_id", self.source_id.clone()),
            ("group", self.group.clone()),
            ("consumer", self.consumer.clone()),
            ("failed_at_ms", self.failed_at_ms.map(|t| t.to_string())),
        ];
        let mut out = String::new();
        for (name, value) in rows {
            out.push_str(&format!("{name:<14} {}\n", opt(value)));
        }
        // Only an entry that was not a metric has it: all its fields, as they were.
        if let Some(raw) = &self.raw {
            out.push_str(&format!("{:<14} {raw}\n", "raw"));
        }
        out
    }
}

impl Render for ReplayReport {
    /// The count, then each failure.
    fn render_human(&self) -> String {
        let mut out = format!(
            "replayed {}, {} failed\n",
            plural(self.replayed, "dead letter", "dead letters"),
            self.failed.len()
        );
        if !self.failed.is_empty() {
            out.push('\n');
            let mut table = Table::new(&[("ID", Left), ("REASON", Left)]);
            for f in &self.failed {
                table.row(vec![f.id.clone(), f.reason.clone()]);
            }
            table.render(&mut out);
        }
        out
    }
}

impl Render for PurgeReport {
    /// One line.
    fn render_human(&self) -> String {
        format!(
            "removed {}\n",
            plural(self.removed, "dead letter", "dead letters")
        )
    }
}

impl Render for TrimReport {
    /// A table per stream and the total.
    fn render_human(&self) -> String {
        let mut out = String::new();
        let removed = if self.dry_run {
            "WOULD REMOVE"
        } else {
            "REMOVED"
        };
        let mut table = Table::new(&[
            ("STREAM", Left),
            ("LENGTH", Right),
            ("MINID", Left),
            (removed, Right),
            ("HELD BACK BY", Left),
        ]);
        for s in &self.streams {
            let held = match (&s.skipped, &s.limiting_group) {
                (Some(why), _) => format!("(not trimmed: {why})"),
                (None, Some(group)) => format!("group '{group}'"),
                (None, None) => "-".into(),
            };
            table.row(vec![
                s.key.clone(),
                s.length.to_string(),
                opt(s.minid.as_ref()),
                s.removed.to_string(),
                held,
            ]);
        }
        table.render(&mut out);
        let entries = plural(self.removed, "entry", "entries");
        out.push_str(&if self.dry_run {
            format!("\ndry run: would remove {entries}\n")
        } else {
            format!("\nremoved {entries}\n")
        });
        out
    }
}

#[cfg(test)]
mod tests;
