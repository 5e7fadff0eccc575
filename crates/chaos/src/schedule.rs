//! The fault schedule: which fault starts when, on what, and for how long, drawn from a
//! seeded PRNG before anything runs.
//!
//! Invariants:
//! - the schedule is a pure function of (seed, duration, enabled kinds, consumer count):
//!   the same inputs print the same schedule, whatever the machine does during the run;
//! - a process (Redis, InfluxDB, the producer, each consumer) holds one process fault at a
//!   time (a kill or a hang, with a second of calm after it heals), while different targets
//!   overlap freely, and Redis's memory limit and its `min-replicas-to-write` are targets
//!   of their own, so Redis can be full, refusing writes and hung or killed at once;
//! - every enabled kind is drawn once, in a seeded order, before kinds are drawn at random,
//!   so a run long enough for that many faults sees every kind.

use std::fmt;
use std::time::Duration;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    /// SIGKILL a consumer process, start it again under its name after the hold.
    KillConsumer,
    /// SIGKILL the producer, start it again on its port after the hold.
    KillProducer,
    /// SIGKILL redis-server (`appendfsync always`), start it again on its AOF after the hold.
    KillRedis,
    /// SIGSTOP redis-server, SIGCONT after the hold.
    StopRedis,
    /// SIGSTOP influxd, SIGCONT after the hold.
    StopInfluxdb,
    /// SIGSTOP a consumer process, SIGCONT after the hold.
    StopConsumer,
    /// SIGSTOP the producer, SIGCONT after the hold.
    StopProducer,
    /// SIGKILL influxd, start it again on its data after the hold.
    RestartInfluxdb,
    /// `CONFIG SET maxmemory` to what Redis uses now (`noeviction`: writes refused), the
    /// usual limit again after the hold.
    RedisFull,
    /// `CONFIG SET min-replicas-to-write 1` without a replica: Redis refuses every write,
    /// group reads and acks included (`NOREPLICAS`, as with its disk full), 0 again after
    /// the hold.
    RedisRefuses,
    /// A point whose field type conflicts with the workload's, through the producer.
    Poison,
}

/// Every kind, in the order the report lists them.
pub(crate) const KINDS: [Kind; 11] = [
    Kind::KillConsumer,
    Kind::KillProducer,
    Kind::KillRedis,
    Kind::StopRedis,
    Kind::StopInfluxdb,
    Kind::StopConsumer,
    Kind::StopProducer,
    Kind::RestartInfluxdb,
    Kind::RedisFull,
    Kind::RedisRefuses,
    Kind::Poison,
];

/// `--faults` group names and the kinds they stand for.
pub(crate) const GROUPS: [(&str, &[Kind]); 6] = [
    (
        "kill",
        &[Kind::KillConsumer, Kind::KillProducer, Kind::KillRedis],
    ),
    (
        "stop",
        &[
            Kind::StopRedis,
            Kind::StopInfluxdb,
            Kind::StopConsumer,
            Kind::StopProducer,
        ],
    ),
    ("restart", &[Kind::RestartInfluxdb]),
    ("oom", &[Kind::RedisFull]),
    ("refuse", &[Kind::RedisRefuses]),
    ("poison", &[Kind::Poison]),
];

impl Kind {
    /// The name used by `--faults` and in the log.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::KillConsumer => "kill-consumer",
            Self::KillProducer => "kill-producer",
            Self::KillRedis => "kill-redis",
            Self::StopRedis => "stop-redis",
            Self::StopInfluxdb => "stop-influxdb",
            Self::StopConsumer => "stop-consumer",
            Self::StopProducer => "stop-producer",
            Self::RestartInfluxdb => "restart-influxdb",
            Self::RedisFull => "redis-full",
            Self::RedisRefuses => "redis-refuses",
            Self::Poison => "poison",
        }
    }

    /// The range of the hold, in ms: downtime after a kill, length of a hang or of a full
    /// Redis. Some consumer faults outlast the consumers' `--min-idle` (5 s), so the other
    /// consumers claim what the victim held.
    fn hold_ms(self) -> (u64, u64) {
        match self {
            Self::KillConsumer => (0, 8_000),
            Self::KillProducer | Self::KillRedis | Self::RestartInfluxdb => (0, 3_000),
            Self::StopRedis | Self::StopProducer => (500, 6_000),
            Self::StopInfluxdb => (1_000, 10_000),
            Self::StopConsumer => (1_000, 9_000),
            Self::RedisFull | Self::RedisRefuses => (2_000, 8_000),
            Self::Poison => (0, 0),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `--faults`: group names (`kill`, `stop`, `restart`, `oom`, `refuse`, `poison`), kind names
/// (`kill-redis`, …) or `all`, separated by commas.
///
/// # Errors
/// A message naming the unknown item and the known names.
pub(crate) fn parse_kinds(list: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let found: Vec<Kind> = if item == "all" {
            KINDS.to_vec()
        } else if let Some((_, group)) = GROUPS.iter().find(|(name, _)| *name == item) {
            group.to_vec()
        } else if let Some(kind) = KINDS.iter().find(|k| k.name() == item) {
            vec![*kind]
        } else {
            let names: Vec<&str> = GROUPS
                .iter()
                .map(|(n, _)| *n)
                .chain(KINDS.iter().map(|k| k.name()))
                .collect();
            return Err(format!(
                "unknown fault '{item}'; known: all, {}",
                names.join(", ")
            ));
        };
        kinds.extend(found);
    }
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        return Err("--faults names no fault".to_string());
    }
    Ok(kinds)
}

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// redis-server, the process.
    Redis,
    /// Redis's `maxmemory`.
    RedisMemory,
    /// Redis's `min-replicas-to-write`.
    RedisWrites,
    /// influxd.
    Influxdb,
    /// The producer.
    Producer,
    /// Consumer process number n (0-based).
    Consumer(usize),
    /// Nothing held: a poison point to database `DATABASES[n]`.
    Database(usize),
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Its number in the schedule, from 1.
    pub(crate) id: usize,
    /// When it starts, from the start of the faults.
    pub(crate) at: Duration,
    /// What it is.
    pub(crate) kind: Kind,
    /// What it hits.
    pub(crate) target: Target,
    /// How long until it heals (0 for a poison point, or a restart at once).
    pub(crate) hold: Duration,
}

/// The calm a process gets after one fault heals before the next one may hit it.
const CALM: Duration = Duration::from_secs(1);

/// Draws the schedule for `duration` of faults of `kinds` on a stack of `consumers`
/// consumer processes and `databases` databases, from `seed`. Faults start between 1 s
/// and `duration - 2 s`, 0.5 to 4.5 s apart (2.5 s on average).
pub(crate) fn draw(
    seed: u64,
    duration: Duration,
    kinds: &[Kind],
    consumers: usize,
    databases: usize,
) -> Vec<Fault> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut first_pass: Vec<Kind> = kinds.to_vec();
    rng.shuffle(&mut first_pass);
    first_pass.reverse(); // popped from the back: the shuffled order, first to last
    let mut free_at: Vec<(Target, Duration)> = Vec::new();
    let is_free = |free_at: &[(Target, Duration)], target: Target, at: Duration| {
        free_at
            .iter()
            .find(|(t, _)| *t == target)
            .is_none_or(|(_, free)| *free <= at)
    };
    let end = duration.saturating_sub(Duration::from_secs(2));
    let mut faults: Vec<Fault> = Vec::new();
    let mut at = Duration::from_secs(1);
    while at < end {
        let kind = match first_pass.pop() {
            Some(kind) => kind,
            None => kinds[rng.usize(..kinds.len())],
        };
        let candidates: Vec<Target> = match kind {
            Kind::KillConsumer | Kind::StopConsumer => {
                (0..consumers).map(Target::Consumer).collect()
            }
            Kind::KillProducer | Kind::StopProducer => vec![Target::Producer],
            Kind::KillRedis | Kind::StopRedis => vec![Target::Redis],
            Kind::StopInfluxdb | Kind::RestartInfluxdb => vec![Target::Influxdb],
            Kind::RedisFull => vec![Target::RedisMemory],
            Kind::RedisRefuses => vec![Target::RedisWrites],
            Kind::Poison => (0..databases).map(Target::Database).collect(),
        };
        let free: Vec<Target> = candidates
            .into_iter()
            .filter(|t| is_free(&free_at, *t, at))
            .collect();
        let (low, high) = kind.hold_ms();
        let hold = Duration::from_millis(rng.u64(low..=high));
        if let Some(&target) = free.get(rng.usize(..free.len().max(1))) {
            if kind != Kind::Poison {
                free_at.retain(|(t, _)| *t != target);
                free_at.push((target, at + hold + CALM));
            }
            faults.push(Fault {
                id: faults.len() + 1,
                at,
                kind,
                target,
                hold,
            });
        } else {
            // Busy: try this kind again at the next draw.
            first_pass.push(kind);
        }
        at += Duration::from_millis(rng.u64(500..=4_500));
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_another_seed_another() {
        let a = draw(7, Duration::from_secs(90), &KINDS, 2, 3);
        let b = draw(7, Duration::from_secs(90), &KINDS, 2, 3);
        let c = draw(8, Duration::from_secs(90), &KINDS, 2, 3);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ninety_seconds_hold_at_least_15_faults_of_every_kind_for_many_seeds() {
        for seed in 0..200 {
            let faults = draw(seed, Duration::from_secs(90), &KINDS, 2, 3);
            assert!(faults.len() >= 15, "seed {seed}: {} faults", faults.len());
            for kind in KINDS {
                assert!(
                    faults.iter().any(|f| f.kind == kind),
                    "seed {seed}: no {kind}"
                );
            }
        }
    }

    #[test]
    fn a_process_holds_one_fault_at_a_time() {
        for seed in 0..200 {
            let faults = draw(seed, Duration::from_secs(600), &KINDS, 3, 3);
            for (i, f) in faults.iter().enumerate() {
                for g in &faults[i + 1..] {
                    if f.target == g.target && f.kind != Kind::Poison {
                        assert!(g.at >= f.at + f.hold + CALM, "seed {seed}: {f:?} and {g:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn faults_parse_from_groups_and_names() {
        assert_eq!(parse_kinds("all").unwrap(), KINDS.to_vec());
        assert_eq!(
            parse_kinds("oom,kill-redis,poison").unwrap(),
            vec![Kind::KillRedis, Kind::RedisFull, Kind::Poison]
        );
        assert_eq!(parse_kinds("kill").unwrap().len(), 3);
        assert!(parse_kinds("kill,nope").unwrap_err().contains("'nope'"));
        assert!(parse_kinds(",").is_err());
    }
}
