//! One memory budget for everything the producer holds for HTTP requests
//! (`max_inflight_bytes`): bodies as they are read, gzip as it is inflated, parsed metrics,
//! the pipelines of the round being stored.
//!
//! Invariants:
//! - memory is charged before it is taken: a request asks its `Charge` for the bytes of
//!   each frame before keeping it, for each inflated chunk before inflating further, for its
//!   parsed metrics before parsing; so the producer's memory for requests never passes the
//!   budget, however many requests arrive and however large they claim to be;
//! - a request waits for room at most `enqueue_timeout` in all, counted from its first
//!   charge, then is refused ([`Exceeded::Busy`]: 503 + `Retry-After`); one that alone
//!   needs more than half the budget is refused at once ([`Exceeded::TooLarge`]: 413): so no
//!   request holds what all the others need, and a gzip bomb stops at half the budget
//!   without waiting for room it should not have;
//! - what a request holds is given back when its `Charge` drops, however the request
//!   ends (answered, refused, or the client gone).
//!
//! Waiting requests are served in arrival order (tokio's semaphore is fair), so a large
//! request is not starved by a stream of small ones. A slow client holds only what it has
//! sent: a thousand stalled bodies cost their bytes, not their declared lengths.

use std::{sync::Arc, time::Duration};

use redline_core::telemetry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The unit of the semaphore's permits: budgets and requests of any size fit its `u32`
/// counts, at the cost of rounding each request up to the next KiB.
const UNIT: u64 = 1024;

/// The producer's budget; cheap to clone (the clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    /// The budget in units.
    units: u64,
    /// The budget in bytes, as configured.
    bytes: u64,
    /// How long a request may wait for room in all.
    enqueue_timeout: Duration,
}

/// Why a request cannot have the memory it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    /// The request alone needs more than half the budget.
    #[error("request needs more memory than one request may hold, half the producer's memory budget of {} (--max-inflight-bytes); send smaller requests", redline_core::units::format_size(*budget))]
    TooLarge {
        /// The budget in bytes.
        budget: u64,
    },
    /// Other requests hold the budget, and none gave enough back within the wait.
    #[error("the producer's memory budget of {} is taken by other requests (waited {waited:?}, --enqueue-timeout); retry later", redline_core::units::format_size(*budget))]
    Busy {
        /// The budget in bytes.
        budget: u64,
        /// How long the request waited.
        waited: Duration,
    },
}

impl Budget {
    /// A budget of `bytes` (at least one unit), each request waiting at most
    /// `enqueue_timeout` for room.
    pub(crate) fn new(bytes: u64, enqueue_timeout: Duration) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        metrics::gauge!(telemetry::INFLIGHT_BUDGET).set(bytes as f64);
        metrics::gauge!(telemetry::INFLIGHT_BYTES).set(0.0);
        Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
            bytes,
            enqueue_timeout,
        }
    }

    /// The budget in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// An empty charge for one request; its wait starts now.
    pub(crate) fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            held: None,
            units: 0,
            bytes: 0,
            deadline: Instant::now() + self.enqueue_timeout,
            started: Instant::now(),
        }
    }

    fn publish(&self) {
        let used = self.units - self.permits.available_permits() as u64;
        metrics::gauge!(telemetry::INFLIGHT_BYTES).set((used * UNIT).min(self.bytes) as f64);
    }
}

/// What one request holds of the budget.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Budget,
    held: Option<OwnedSemaphorePermit>,
    /// Units held (`held`'s permits).
    units: u64,
    /// Bytes charged; `units` is this rounded up.
    bytes: u64,
    deadline: Instant,
    started: Instant,
}

impl Charge {
    /// Charges `bytes` more, waiting for room until the request's deadline.
    ///
    /// # Errors
    /// [`Exceeded::TooLarge`] when the request would hold more than half the budget,
    /// [`Exceeded::Busy`] when the deadline passed first. What it held stays held.
    pub(crate) async fn add(&mut self, bytes: u64) -> Result<(), Exceeded> {
        let total = self.bytes.saturating_add(bytes);
        if total > self.budget.bytes / 2 {
            return Err(Exceeded::TooLarge {
                budget: self.budget.bytes,
            });
        }
        let wanted = total.div_ceil(UNIT);
        if wanted > self.units {
            let more = u32::try_from(wanted - self.units).expect("at most the budget, in units");
            let permits = self.budget.permits.clone();
            let permit = match permits.clone().try_acquire_many_owned(more) {
                Ok(permit) => permit,
                Err(_) => {
                    match tokio::time::timeout_at(self.deadline, permits.acquire_many_owned(more))
                        .await
                    {
                        Ok(Ok(permit)) => permit,
                        // The semaphore is never closed; a timeout is the only way here.
                        Ok(Err(_)) | Err(_) => {
                            return Err(Exceeded::Busy {
                                budget: self.budget.bytes,
                                waited: self.started.elapsed(),
                            })
                        }
                    }
                }
            };
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
            self.units = wanted;
            self.budget.publish();
        }
        self.bytes = total;
        Ok(())
    }

    /// Gives back what is charged beyond `bytes` (memory the request let go of).
    pub(crate) fn shrink_to(&mut self, bytes: u64) {
        if bytes >= self.bytes {
            return;
        }
        let keep = bytes.div_ceil(UNIT);
        if let Some(held) = &mut self.held {
            let give = usize::try_from(self.units - keep).unwrap_or(usize::MAX);
            drop(held.split(give));
        }
        self.units = keep;
        self.bytes = bytes;
        self.budget.publish();
    }

    /// Charges exactly `bytes`: more ([`Charge::add`], which may wait) or less.
    ///
    /// # Errors
    /// As [`Charge::add`].
    pub(crate) async fn set(&mut self, bytes: u64) -> Result<(), Exceeded> {
        if bytes > self.bytes {
            self.add(bytes - self.bytes).await
        } else {
            self.shrink_to(bytes);
            Ok(())
        }
    }

    /// Bytes charged.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            drop(held);
            self.budget.publish();
        }
    }
}

#[cfg(test)]
mod tests;
