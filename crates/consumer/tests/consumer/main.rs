//! The consumer against real `redis-server` and `influxd` processes from `redline-testkit`,
//! one set of servers per test.

mod claims;
mod failover;
mod file_sink;
mod influx_sink;
mod lifecycle;
mod reads;
mod support;
