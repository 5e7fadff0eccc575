//! `redline status` as tables: streams, groups, the groups' write rates, dead letters.

use redline_streams::rates::GroupRate;
use redline_streams::StatusReport;

use super::Align::{Left, Right};
use super::{bytes, duration, opt, sentinel, Render, Table, BYTES_WIDTH};

impl Render for StatusReport {
    /// Under Sentinel the master and the sentinels' views, then a table of streams, a
    /// table of groups, and the dead-letter count.
    fn render_human(&self) -> String {
        let mut out = self
            .sentinel
            .as_ref()
            .map(sentinel::render)
            .unwrap_or_default();
        let mut streams = Table::new(&[
            ("STREAM", Left),
            ("LENGTH", Right),
            ("FIRST ID", Left),
            ("LAST ID", Left),
            ("MEMORY", Right),
        ])
        .reserve("MEMORY", BYTES_WIDTH);
        let mut groups = Table::new(&[
            ("STREAM", Left),
            ("GROUP", Left),
            ("CONSUMERS", Right),
            ("PENDING", Right),
            ("LAG", Right),
            ("OLDEST PENDING AGE", Right),
            ("LAST DELIVERED", Left),
        ]);
        for s in &self.streams {
            let length = if s.exists {
                s.length.to_string()
            } else {
                "missing".into()
            };
            streams.row(vec![
                s.key.clone(),
                length,
                opt(s.first_id.as_ref()),
                opt(s.last_id.as_ref()),
                opt(s.memory_bytes.map(bytes)),
            ]);
            for g in &s.groups {
                groups.row(vec![
                    s.key.clone(),
                    g.name.clone(),
                    g.consumers.to_string(),
                    g.pending.to_string(),
                    opt(g.lag),
                    opt(g.oldest_pending_age_ms.map(duration)),
                    g.last_delivered_id.clone(),
                ]);
            }
        }
        streams.render(&mut out);
        out.push('\n');
        if groups.rows.is_empty() {
            out.push_str("no consumer groups\n");
        } else {
            groups.render(&mut out);
        }
        rates(&self.rates, &mut out);
        out.push('\n');
        out.push_str(&format!(
            "dead letters ({}): {}\n",
            self.dlq_key, self.dlq_length
        ));
        out
    }
}

/// Each group's write rate, limit, backlog and time to drain, when a consumer process of
/// some group reports its rate.
fn rates(rates: &[GroupRate], out: &mut String) {
    if rates.iter().all(|r| r.processes == 0) {
        return;
    }
    let mut table = Table::new(&[
        ("GROUP", Left),
        ("PROCESSES", Right),
        ("WRITE RATE", Right),
        ("MAX WRITE RATE", Right),
        ("BACKLOG", Right),
        ("TIME TO DRAIN", Right),
    ]);
    for r in rates {
        let limit = match (r.processes, r.max_write_rate) {
            (0, _) => "-".to_string(),
            (_, None) => "unlimited".to_string(),
            (_, Some(limit)) => format!("{limit}/s"),
        };
        table.row(vec![
            r.group.clone(),
            r.processes.to_string(),
            format!("{}/s", r.write_rate),
            limit,
            r.backlog.to_string(),
            opt(r.drain_seconds.map(|s| duration(s * 1000))),
        ]);
    }
    out.push('\n');
    table.render(out);
    for r in rates.iter().filter(|r| r.routings.len() > 1) {
        out.push_str(&format!(
            "warning: the consumers of group '{}' route differently ({}): what one skips \
             another writes; give them the same patterns\n",
            r.group,
            r.routings.join(" | ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(group: &str, processes: u64, limit: Option<u64>, drain: Option<u64>) -> GroupRate {
        GroupRate {
            group: group.into(),
            processes,
            write_rate: 49_987,
            max_write_rate: limit,
            backlog: 150_000,
            drain_seconds: drain,
            routings: vec!["every entry".into()],
        }
    }

    #[test]
    fn each_group_shows_its_rate_limit_backlog_and_time_to_drain() {
        let mut out = String::new();
        let groups = [
            rate("to-a", 2, None, Some(4)),
            rate("to-b", 1, Some(50_000), Some(3)),
            rate("archive", 0, None, None),
        ];
        rates(&groups, &mut out);
        assert_eq!(
            out,
            "\nGROUP    PROCESSES  WRITE RATE  MAX WRITE RATE  BACKLOG  TIME TO DRAIN\n\
             to-a             2     49987/s       unlimited   150000           4.0s\n\
             to-b             1     49987/s         50000/s   150000           3.0s\n\
             archive          0     49987/s               -   150000              -\n"
        );
        // Consumers of one group that route differently: said under the table.
        let mut split = rate("to-a", 2, None, Some(4));
        split.routings = vec!["--include-db a".into(), "every entry".into()];
        let mut out = String::new();
        rates(&[split], &mut out);
        assert!(
            out.ends_with(
                "warning: the consumers of group 'to-a' route differently (--include-db a | \
                 every entry): what one skips another writes; give them the same patterns\n"
            ),
            "{out}"
        );
        // No process reports a rate: no table.
        let mut none = String::new();
        rates(&[rate("archive", 0, None, None)], &mut none);
        assert_eq!(none, "");
    }
}
