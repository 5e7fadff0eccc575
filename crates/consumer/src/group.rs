//! The consumer group: created idempotently on every partition before reading.
//!
//! `XGROUP CREATE <key> <group> 0 MKSTREAM` makes a new group start at the oldest entry, so
//! nothing buffered before the first consumer started is skipped; `$` (start from latest)
//! is the explicit opt-out. `BUSYGROUP` means the group exists: its position is kept.
//!
//! A Redis at `maxmemory` refuses `XGROUP CREATE` with `OOM` even when the group exists
//! (the command may allocate, so Redis refuses it before looking). Reading, acking and
//! trimming still work then, and they are what frees memory: so on `OOM` the group's
//! existence is checked with `XINFO GROUPS` (which allocates nothing), and only a group that
//! really is missing waits for memory.
//! <https://redis.io/docs/latest/commands/xgroup-create/>

use redline_core::redis::Pool;

use crate::config::StartFrom;
use crate::conn;

/// Creates `group` on every stream of `keys` unless it exists.
///
/// # Errors
/// A [`conn::Error`] other than `BUSYGROUP`, e.g. Redis down or a key that is not a stream.
pub(crate) async fn ensure(
    pool: &Pool,
    keys: &[String],
    group: &str,
    start: StartFrom,
) -> conn::Result<()> {
    let mut conn = conn::get(pool).await?;
    let id = match start {
        StartFrom::Oldest => "0",
        StartFrom::Latest => "$",
    };
    for key in keys {
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg(id)
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await;
        match created {
            Ok(()) => {
                tracing::info!(stream = %key, group, start = id, "Created the consumer group.")
            }
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) if redline_core::redis::is_oom(&e) && exists(&mut conn, key, group).await? => {
                tracing::debug!(stream = %key, group, "Redis is full; the consumer group exists already.");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `group` exists on stream `key` (`XINFO GROUPS`; a missing stream has none).
async fn exists(
    conn: &mut redline_core::redis::PooledConnection,
    key: &str,
    group: &str,
) -> conn::Result<bool> {
    match redline_streams::groups(conn, key).await {
        Ok(groups) => Ok(groups.iter().any(|g| g.name == group)),
        // "ERR no such key": nothing exists on a missing stream.
        Err(redline_streams::Error::Command { reply, .. }) if reply.code() == Some("ERR") => {
            Ok(false)
        }
        Err(other) => Err(other.into()),
    }
}
