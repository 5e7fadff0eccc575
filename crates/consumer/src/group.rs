//! The consumer group: created idempotently on every partition before reading.
//!
//! `XGROUP CREATE <key> <group> 0 MKSTREAM` makes a new group start at the oldest entry, so
//! nothing buffered before the first consumer started is skipped; `$` (start from latest)
//! is the explicit opt-out. `BUSYGROUP` means the group exists: its position is kept.
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
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
