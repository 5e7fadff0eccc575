//! redline-ops against a real `redis-server` per test: every report is compared with what
//! Redis itself says (`XPENDING`, `XINFO`, `XRANGE`), state is set up with plain commands.

mod claim;
mod cluster;
mod consumers;
mod dlq;
mod errors;
mod pending;
mod rates;
mod setup;
mod status;
mod trim;
