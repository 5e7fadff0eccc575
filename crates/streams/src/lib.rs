//! redline-streams: what the producer, the consumer and the ops commands share about the
//! state of redline's streams in Redis. Each function is async over one Redis connection and
//! the deployment's [`StreamKeys`](redline_core::keys::StreamKeys), and returns a report that
//! serialises to the JSON of DESIGN.md (`--json`); the binary renders them as tables.
//!
//! What it owns, and where each invariant is enforced:
//! - group state and backlog, from one `XINFO GROUPS` decoder (`stream.rs`): [`groups`],
//!   [`backlog`], [`status`], [`pending`];
//! - entry ids ([`Id`], `reply.rs`): parsing, ordering, canonical text;
//! - trimming (`trim.rs`): only entries every group has acknowledged and will not read again,
//!   computed and applied in one script; a stream without groups is never trimmed;
//! - pruning (`consumers.rs`): a consumer is removed only while it holds nothing pending;
//! - the dead-letter format (`dlq.rs`): one encoder ([`NewLetter`]), one decoder
//!   ([`DeadLetter`]), and replay, which removes a letter only in the step that re-adds it;
//! - hand-overs (`claim.rs`) and the `/metrics` gauges read from Redis (`gauges.rs`).
//!
//! The connection is any redis-rs async connection, a Redis Cluster connection included
//! ([`connect`] makes the right one from the configuration). Every command and script
//! touches one key, so none crosses a cluster slot, except the atomic replay script of
//! [`dlq_replay`] (dead-letter stream + partition); on a cluster, which refuses it with
//! `CROSSSLOT`, replay falls back to `XADD` then `XDEL` (see `dlq.rs`).
//!
//! ```no_run
//! # async fn example() -> redline_streams::Result<()> {
//! use redline_core::{keys::StreamKeys, redis::RedisConfig};
//!
//! let mut conn = redline_streams::connect(&RedisConfig::default()).await?;
//! let keys = StreamKeys::new("redline:metrics", 1);
//! let report = redline_streams::status(&mut conn, &keys).await?;
//! println!("{}", serde_json::to_string(&report).unwrap());
//! # Ok(())
//! # }
//! ```

mod claim;
mod consumers;
pub mod dlq;
mod error;
mod gauges;
mod pending;
pub mod rates;
mod reply;
mod status;
mod stream;
mod trim;

use redline_core::redis::{Connection, RedisConfig};

pub use crate::claim::{claim, ClaimReport, ClaimedEntry};
pub use crate::consumers::{consumers, ConsumerInfo, ConsumersReport};
pub use crate::dlq::{
    dlq_list, dlq_purge, dlq_replay, dlq_show, DeadLetter, DlqList, NewLetter, PurgeReport,
    ReplayFailure, ReplayReport,
};
pub use crate::error::{Error, Result};
pub use crate::gauges::{export as export_gauges, GroupGauges};
pub use crate::pending::{pending, ConsumerPending, PendingEntry, PendingFilter, PendingReport};
pub use crate::reply::Id;
pub use crate::status::{
    sentinel_status, status, GroupStatus, SentinelStatus, StatusReport, StreamStatus,
};
pub use crate::stream::{backlog, decode_groups, groups, GroupInfo};
pub use crate::trim::{trim, trim_plan, StreamTrim, TrimReport};

/// Connects to the Redis of `config` (standalone, Redis Cluster when it names several nodes
/// or sets `cluster`, or the master the sentinels of a `redis+sentinel://` URL name), with
/// its connect and response timeouts.
///
/// # Errors
/// [`Error::Config`] for a bad URL, [`Error::Connect`] when Redis cannot be reached.
pub async fn connect(config: &RedisConfig) -> Result<Connection> {
    match config.connect().await {
        Ok(conn) => Ok(conn),
        Err(redline_core::redis::Error::Connect { url, reason }) => {
            Err(Error::Connect { url, reason })
        }
        Err(other) => Err(other.into()),
    }
}
