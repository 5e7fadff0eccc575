//! End-to-end tests: the `redline` binary against real `redis-server` and `influxd`
//! processes started by `redline-testkit`, one set of servers per test.

mod cli;
mod faults;
mod guarantees;
mod pipeline;
mod support;
