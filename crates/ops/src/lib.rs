//! redline-ops: the toolkit behind `redline status | pending | claim | consumers | dlq |
//! trim`.
//!
//! Every command is an async function over one Redis connection and the deployment's
//! [`StreamKeys`](redline_core::keys::StreamKeys); it returns a report that serialises to the JSON of DESIGN.md
//! (`--json`) and renders as a padded table ([`StatusReport::render_human`] and friends).
//! Errors are [`Error`]s whose messages fit on one line.
//!
//! Guarantees the commands keep (each module states its own):
//! - [`trim`] removes only entries every group on the stream has acknowledged, computed and
//!   applied atomically; a stream without groups is never trimmed;
//! - [`consumers`] removes a consumer only while it holds nothing pending;
//! - [`dlq_replay`] removes a dead letter only in the step that re-adds it to its stream.
//!
//! The connection is any redis-rs async connection, a Redis Cluster connection included
//! ([`connect`] makes the right one from the configuration). Every command and script
//! touches one key, so none crosses a cluster slot, except the atomic replay script of
//! [`dlq_replay`] (dead-letter stream + partition); on a cluster, which refuses it with
//! `CROSSSLOT`, replay falls back to `XADD` then `XDEL` (see `dlq.rs`).
//!
//! ```no_run
//! # async fn example() -> redline_ops::Result<()> {
//! use redline_core::{keys::StreamKeys, redis::RedisConfig};
//!
//! let mut conn = redline_ops::connect(&RedisConfig::default()).await?;
//! let keys = StreamKeys::new("redline:metrics", 1);
//! print!("{}", redline_ops::status(&mut conn, &keys).await?.render_human());
//! # Ok(())
//! # }
//! ```

mod claim;
mod consumers;
mod dlq;
mod error;
mod gauges;
mod pending;
mod render;
mod reply;
mod status;
mod stream;
mod trim;

use redline_core::redis::{Connection, RedisConfig};

pub use crate::claim::{claim, ClaimReport, ClaimedEntry};
pub use crate::consumers::{consumers, ConsumerInfo, ConsumersReport};
pub use crate::dlq::{
    dlq_list, dlq_purge, dlq_replay, dlq_show, DeadLetter, DlqList, PurgeReport, ReplayFailure,
    ReplayReport,
};
pub use crate::error::{Error, Result};
pub use crate::gauges::{export as export_gauges, GroupGauges};
pub use crate::pending::{pending, ConsumerPending, PendingEntry, PendingFilter, PendingReport};
pub use crate::status::{status, GroupStatus, StatusReport, StreamStatus};
pub use crate::trim::{trim, trim_plan, StreamTrim, TrimReport};

/// Connects to the Redis of `config` (standalone, or Redis Cluster when it names several
/// nodes or sets `cluster`), with its connect and response timeouts.
///
/// # Errors
/// [`Error::Config`] for a bad URL, [`Error::Connect`] when Redis cannot be reached.
pub async fn connect(config: &RedisConfig) -> Result<Connection> {
    match config.connect().await {
        Ok(conn) => Ok(conn),
        Err(redline_core::redis::Error::Connect { url, source }) => {
            Err(Error::Connect { url, source })
        }
        Err(other) => Err(other.into()),
    }
}
