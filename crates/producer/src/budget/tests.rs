//! The budget's rules on a paused clock: room is given in arrival order, a request waits at
//! most its enqueue timeout, one larger than the budget is refused at once.

use super::*;

const KIB: u64 = 1024;

#[tokio::test(start_paused = true)]
async fn charges_fit_until_the_budget_is_taken_then_wait_for_room() {
    let budget = Budget::new(100 * KIB, Duration::from_secs(2));
    let mut first = budget.charge();
    first.add(30 * KIB).await.unwrap();
    first.add(20 * KIB).await.unwrap();
    assert_eq!(first.bytes(), 50 * KIB);
    let mut second = budget.charge();
    second.add(40 * KIB).await.unwrap();

    // 20 KiB more do not fit next to the 90 held: the third waits, and gets them once the
    // first gives 30 back.
    let mut third = budget.charge();
    let waiting = tokio::spawn(async move {
        let result = third.add(20 * KIB).await;
        (result, third)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    first.shrink_to(20 * KIB);
    let (result, third) = waiting.await.unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(third.bytes(), 20 * KIB);
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_at_most_its_enqueue_timeout_and_keeps_what_it_held() {
    let budget = Budget::new(100 * KIB, Duration::from_secs(2));
    let mut hog = budget.charge();
    hog.add(50 * KIB).await.unwrap();
    let mut other = budget.charge();
    other.add(50 * KIB).await.unwrap();
    let mut late = budget.charge();
    late.add(KIB).await.unwrap_err(); // the budget is all taken
    let started = Instant::now();
    let error = late.add(KIB).await.unwrap_err();
    // The deadline counts from the request's start, not from each wait.
    assert!(
        started.elapsed() < Duration::from_millis(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, Exceeded::Busy { budget, .. } if budget == 100 * KIB));
    assert_eq!(
        error.to_string().split(" (waited").next().unwrap(),
        "the producer's memory budget of 100KiB is taken by other requests"
    );
    drop(hog);
    // Once the hog is gone, room is there at once.
    budget.charge().add(50 * KIB).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_half_the_budget_is_refused_at_once() {
    let budget = Budget::new(100 * KIB, Duration::from_secs(2));
    let mut charge = budget.charge();
    charge.add(49 * KIB).await.unwrap();
    let started = Instant::now();
    let error = charge.add(2 * KIB).await.unwrap_err();
    assert_eq!(error, Exceeded::TooLarge { budget: 100 * KIB });
    assert_eq!(Instant::now(), started, "no wait for what can never fit");
    assert_eq!(
        error.to_string(),
        "request needs more memory than one request may hold, half the producer's memory budget of 100KiB (--max-inflight-bytes); send smaller requests"
    );
}

#[tokio::test(start_paused = true)]
async fn room_goes_in_arrival_order_so_a_large_request_is_not_starved() {
    let budget = Budget::new(100 * KIB, Duration::from_secs(60));
    let mut hog = budget.charge();
    hog.add(50 * KIB).await.unwrap();
    let mut hog2 = budget.charge();
    hog2.add(20 * KIB).await.unwrap();
    // A large request waits for 40 KiB; small ones arriving after it queue behind it.
    let large = {
        let mut charge = budget.charge();
        tokio::spawn(async move { charge.add(40 * KIB).await.map(|()| charge) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let small = {
        let mut charge = budget.charge();
        tokio::spawn(async move { charge.add(10 * KIB).await.map(|()| charge) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    // 30 KiB are free, enough for the small one, yet it waits behind the large one.
    assert!(!large.is_finished());
    assert!(!small.is_finished(), "the small one overtook the large one");
    drop(hog);
    let large = large.await.unwrap().unwrap();
    assert_eq!(large.bytes(), 40 * KIB);
    let small = small.await.unwrap().unwrap();
    assert_eq!(small.bytes(), 10 * KIB);
}

#[tokio::test(start_paused = true)]
async fn what_a_request_held_comes_back_when_it_ends() {
    let budget = Budget::new(10 * KIB, Duration::from_secs(1));
    for _ in 0..100 {
        let mut charge = budget.charge();
        charge.add(5 * KIB).await.unwrap();
    }
    assert_eq!(budget.permits.available_permits() as u64, budget.units);
}
