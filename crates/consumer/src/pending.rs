//! The group's pending entries list (PEL) as the record of who holds what and how often it
//! was delivered: read with `XPENDING`, refreshed with `XCLAIM … JUSTID`.
//!
//! Nothing here acknowledges anything; [`crate::deliver`] does.
//! <https://redis.io/docs/latest/commands/xpending/>, <https://redis.io/docs/latest/commands/xclaim/>

use std::collections::HashMap;

use redline_core::redis::PooledConnection as Connection;
use redline_streams::Id;

use crate::conn;

/// Ids per XCLAIM command.
const CHUNK: usize = 1000;

/// Which of `ids` (entries of stream `key`) `consumer` still holds in `group`, with their
/// delivery counts. Ids missing from the answer were acknowledged or claimed by another
/// consumer. `None` when the group no longer exists (Redis lost its data).
///
/// Pages through `XPENDING key group (start end count consumer` over the ids' range.
///
/// # Errors
/// A [`conn::Error`] other than `NOGROUP`.
pub(crate) async fn owned(
    conn: &mut Connection,
    key: &str,
    group: &str,
    consumer: &str,
    ids: &[&str],
) -> conn::Result<Option<HashMap<String, u64>>> {
    let mut wanted: Vec<Id> = ids.iter().filter_map(|id| Id::parse(id)).collect();
    let mut found = HashMap::with_capacity(ids.len());
    if wanted.is_empty() {
        return Ok(Some(found));
    }
    wanted.sort_unstable();
    let wanted_set: std::collections::HashSet<&str> = ids.iter().copied().collect();
    let end = wanted[wanted.len() - 1].to_string();
    let mut start = wanted[0].to_string();
    let page = ids.len().clamp(100, 10_000);
    loop {
        let rows = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg(&start)
            .arg(&end)
            .arg(page)
            .arg(consumer)
            .query_async::<Vec<(String, String, u64, u64)>>(conn)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let full = rows.len() >= page;
        let last = rows.last().map(|(id, ..)| id.clone());
        for (id, _, _, deliveries) in rows {
            if wanted_set.contains(id.as_str()) {
                found.insert(id, deliveries);
            }
        }
        match last {
            Some(last) if full && found.len() < wanted_set.len() => start = format!("({last}"),
            _ => return Ok(Some(found)),
        }
    }
}

/// Marks `ids` of `key` as just delivered to `consumer`, resetting their idle time so no one
/// claims entries a live consumer is retrying, and sets each one's delivery count when given
/// (`XCLAIM … 0 id… [RETRYCOUNT n] JUSTID`; JUSTID alone leaves the count as it is).
///
/// # Errors
/// A [`conn::Error`]; `NOGROUP` is ignored (nothing is pending any more; see
/// [`group_gone`]).
pub(crate) async fn touch(
    conn: &mut Connection,
    key: &str,
    group: &str,
    consumer: &str,
    ids: &[(&str, Option<u64>)],
) -> conn::Result<()> {
    let mut by_count: HashMap<Option<u64>, Vec<&str>> = HashMap::new();
    for (id, count) in ids {
        by_count.entry(*count).or_default().push(id);
    }
    let mut pipe = redis::pipe();
    for (count, ids) in &by_count {
        for chunk in ids.chunks(CHUNK) {
            let cmd = pipe
                .cmd("XCLAIM")
                .arg(key)
                .arg(group)
                .arg(consumer)
                .arg(0)
                .arg(chunk);
            if let Some(count) = count {
                cmd.arg("RETRYCOUNT").arg(count);
            }
            cmd.arg("JUSTID").ignore();
        }
    }
    match pipe.query_async::<()>(conn).await {
        Err(e) if group_gone(&e) => Ok(()),
        other => Ok(other?),
    }
}

/// Whether Redis answered `NOGROUP`, to the command or to every command of the pipeline
/// (redis-rs reports a pipeline's error replies together, without a code of its own).
fn group_gone(e: &redis::RedisError) -> bool {
    const NOGROUP: &str = "NOGROUP";
    e.code() == Some(NOGROUP)
        || e.clone().into_server_errors().is_some_and(|errors| {
            !errors.is_empty() && errors.iter().all(|(_, error)| error.code() == NOGROUP)
        })
}

#[cfg(test)]
mod tests;
