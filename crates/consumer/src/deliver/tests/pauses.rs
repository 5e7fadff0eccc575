//! Retries wait: an outage is not hammered, and no wait outlasts half of `min_idle` (the
//! entries must be touched again before another consumer may claim them).

use super::*;

#[test]
fn a_pause_is_never_longer_than_half_of_min_idle() {
    // A backoff whose delays (full jitter up to 10 s) would all pass the cap of 500 ms.
    let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
    let pauses: Vec<Duration> = (0..200)
        .map(|_| pause_for(&mut backoff, Duration::from_secs(1)))
        .collect();
    let longest = pauses.iter().max().unwrap();
    assert!(*longest <= Duration::from_millis(500), "{longest:?}");
    // Capped, not cut to nothing: of 200 draws, the chance that none passes 250 ms is 2^-200.
    assert!(*longest > Duration::from_millis(250), "{longest:?}");

    let mut short = Backoff::new(Duration::from_millis(20), Duration::from_millis(20));
    let pause = pause_for(&mut short, Duration::from_secs(1));
    assert!(
        pause <= Duration::from_millis(20),
        "{pause:?}: the backoff's own delay"
    );
}

#[tokio::test]
async fn an_outage_is_retried_after_pauses_not_at_once() {
    let (redis, batch) = read_entries(&lines(5, None)).await;
    let (mut deliverer, seen) = deliverer(&redis, down_for(20), 2);
    deliverer.settings.retry_initial = Duration::from_millis(100);
    deliverer.settings.retry_max = Duration::from_millis(100);
    let started = std::time::Instant::now();
    within(deliverer.deliver(batch)).await;
    let took = started.elapsed();

    assert_eq!(seen.lock().unwrap().calls, 21);
    assert_eq!(pending_count(&redis).await, 0);
    // 20 pauses drawn from [0, 100 ms]: about 1 s. The chance that they add up to less than
    // 300 ms is below 10^-9; without pauses the 21 attempts take a few milliseconds.
    assert!(
        took >= Duration::from_millis(300),
        "21 attempts in {took:?}: the retries did not wait"
    );
}
