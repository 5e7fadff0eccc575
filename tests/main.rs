//! End-to-end tests: the `redline` binary against real `redis-server` and `influxd`
//! processes started by `redline-testkit`, one set of servers per test.

mod backpressure;
mod cli;
mod compat;
mod compose;
mod docs;
mod fanout;
mod faults;
mod guarantees;
mod kubernetes;
mod memory;
mod operability;
mod ops;
mod pipeline;
mod scale;
mod security;
mod sentinel;
mod snapshot;
mod sources;
mod support;
mod trimming;
