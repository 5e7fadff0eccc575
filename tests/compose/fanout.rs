//! The `fanout` profile: a second consumer group writing to a second InfluxDB.

use super::{redline_commands, resolved_compose_with, scalar};

#[test]
fn the_fanout_profile_adds_a_second_group_writing_to_a_second_influxdb() {
    let compose = resolved_compose_with(Some("fanout"), None);
    let services = &compose.services;
    let mut profiled: Vec<&str> = services
        .iter()
        .filter(|(_, s)| s.profiles.iter().any(|p| p == "fanout"))
        .map(|(name, _)| name.as_str())
        .collect();
    profiled.sort_unstable();
    assert_eq!(profiled, ["consumer-b", "influxdb-b"]);
    assert_eq!(
        redline_commands(&compose),
        [
            "consumer-b:consumer",
            "consumer:consumer",
            "producer:producer"
        ]
    );

    // Its own group (the main consumers' is the default, `redline`), its own backend.
    let b = &services["consumer-b"];
    assert_eq!(services["consumer"].flag("consumer", "--group"), None);
    assert_eq!(b.flag("consumer-b", "--group").as_deref(), Some("to-b"));
    assert_eq!(
        b.flag("consumer-b", "--influx-url").as_deref(),
        Some("http://influxdb-b:8086")
    );
    assert_eq!(
        services["consumer"]
            .flag("consumer", "--influx-url")
            .as_deref(),
        Some("http://influxdb:8086")
    );
    assert_eq!(
        b.flag("consumer-b", "--max-write-rate").as_deref(),
        Some("50000")
    );
    let published: Vec<String> = services["influxdb-b"]
        .ports
        .iter()
        .map(|p| scalar(p, "influxdb-b"))
        .collect();
    assert_eq!(published, ["127.0.0.1:8087:8086/tcp"]);
}
