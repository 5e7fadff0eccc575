//! The drain after the faults: polls Redis until the group has read every entry and holds
//! nothing pending, and reads the group's progress for the progress line.

use std::time::{Duration, Instant};

use redis::Value;

use crate::stack::redis_conn;

/// The metric stream (the consumers' and producer's default `--stream`).
pub(crate) const STREAM: &str = "redline:metrics";

/// The dead-letter stream of [`STREAM`].
pub(crate) const DLQ: &str = "redline:metrics:dlq";

/// The consumers' group (their default `--group`).
pub(crate) const GROUP: &str = "redline";

/// The group's state as Redis tells it.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupState {
    /// Entries delivered and not acknowledged.
    pub(crate) pending: u64,
    /// Whether the group has been delivered the stream's last entry.
    pub(crate) caught_up: bool,
    /// Entries in the dead-letter stream.
    pub(crate) dead_letters: u64,
}

/// Reads the group's state; `None` while Redis does not answer (down, hung, loading).
/// Group state is decoded by `redline-streams`, as everywhere else; "caught up" compares the
/// group's last delivered id with the stream's last entry (Redis's `lag` is unknown after an
/// AOF reload), and an empty stream (trimmed to nothing) has nothing left to deliver.
pub(crate) fn group_state(url: &str) -> Option<GroupState> {
    let mut conn = redis_conn(url).ok()?;
    let groups: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query(&mut conn)
        .ok()?;
    let group = redline_streams::decode_groups(groups)
        .ok()?
        .into_iter()
        .find(|g| g.name == GROUP)?;
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut conn)
        .ok()?;
    let caught_up = last
        .ids
        .first()
        .is_none_or(|entry| entry.id == group.last_delivered_id);
    let dead_letters: u64 = redis::cmd("XLEN").arg(DLQ).query(&mut conn).ok()?;
    Some(GroupState {
        pending: group.pending,
        caught_up,
        dead_letters,
    })
}

/// Waits until the group caught up and holds nothing pending, for at most `timeout`;
/// the last state seen and whether it drained.
pub(crate) fn wait(url: &str, timeout: Duration) -> (Option<GroupState>, bool) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    let mut said = Instant::now();
    loop {
        let state = group_state(url);
        if let Some(s) = &state {
            if s.caught_up && s.pending == 0 {
                return (state, true);
            }
        }
        if state.is_some() {
            last = state;
        }
        if Instant::now() >= deadline {
            return (last, false);
        }
        if said.elapsed() >= Duration::from_secs(5) {
            said = Instant::now();
            match &last {
                Some(s) => eprintln!(
                    "draining: {} pending, caught up: {}, {} dead letters",
                    s.pending, s.caught_up, s.dead_letters
                ),
                None => eprintln!("draining: Redis does not answer yet"),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
