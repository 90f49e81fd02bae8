use super::*;

#[test]
fn rate_steps_down_on_429_to_a_floor_and_recovers_in_hundredths() {
    let check = |got: f64, expect: f64| assert!((got - expect).abs() < 1e-9, "{got} != {expect}");
    check(decreased_rate(30.0, 30.0), 28.5);
    check(decreased_rate(28.5, 30.0), 27.075);
    check(decreased_rate(1.55, 30.0), 1.5);
    check(decreased_rate(1.5, 30.0), 1.5);
    check(increased_rate(27.0, 30.0), 27.3);
    check(increased_rate(29.9, 30.0), 30.0);
    check(increased_rate(30.0, 30.0), 30.0);
}

#[test]
fn quota_allows_the_burst_then_refuses() {
    let limiter = RateLimiter::direct(quota(30.0, 50));
    let allowed = (0..100).filter(|_| limiter.check().is_ok()).count();
    // 50 at once; a token or so may have refilled while the loop ran.
    assert!((50..=52).contains(&allowed), "{allowed}");

    let slow = RateLimiter::direct(quota(0.5, 1));
    assert!(slow.check().is_ok());
    assert!(slow.check().is_err());
}

#[test]
fn throttling_lowers_the_rate_once_per_signal_window() {
    let limiter = SendLimiter::new(30.0, 50);
    assert_eq!(limiter.current_rate(), Some(30.0));
    // The first signal lands right after creation: `last_change` is "now", so it is ignored
    // unless we move the window back.
    {
        let mut state = lock(limiter.adaptive.as_ref().unwrap());
        state.last_change = Instant::now() - DECREASE_INTERVAL;
    }
    limiter.throttled(None);
    limiter.throttled(None);
    assert_eq!(limiter.current_rate(), Some(28.5));
    // The bucket after a 429 starts empty: no burst into a target that just said no.
    assert!(
        lock(limiter.adaptive.as_ref().unwrap())
            .bucket
            .check()
            .is_err()
    );
    limiter.succeeded(Duration::ZERO);
    assert_eq!(
        limiter.current_rate(),
        Some(28.5),
        "no recovery within the quiet interval"
    );
    {
        let mut state = lock(limiter.adaptive.as_ref().unwrap());
        state.last_change = Instant::now() - INCREASE_INTERVAL;
    }
    limiter.succeeded(Duration::ZERO);
    let rate = limiter.current_rate().unwrap();
    assert!((rate - 28.8).abs() < 1e-9, "{rate}");
}

#[test]
fn auto_halves_at_once_on_429_and_grows_per_window() {
    let limiter = SendLimiter::auto(AutoRate::under(100.0));
    assert_eq!(limiter.current_rate(), Some(10.0));
    let age = |by: Duration| {
        let mut state = lock(limiter.adaptive.as_ref().unwrap());
        let auto = state.auto.as_mut().unwrap();
        auto.window_started -= by;
        state.last_change -= by;
    };
    // A window that used its rate with flat latency: +5/s when it ends.
    {
        let mut state = lock(limiter.adaptive.as_ref().unwrap());
        state.auto.as_mut().unwrap().window.sent = 10;
    }
    limiter.succeeded(Duration::from_millis(5));
    assert_eq!(limiter.current_rate(), Some(10.0), "the window is not over");
    age(AUTO_WINDOW);
    limiter.succeeded(Duration::from_millis(5));
    assert_eq!(limiter.current_rate(), Some(15.0));
    // A 429 halves at once, into an empty bucket; a second one right after counts once.
    age(DECREASE_INTERVAL);
    limiter.throttled(None);
    limiter.throttled(None);
    assert_eq!(limiter.current_rate(), Some(7.5));
    assert!(
        lock(limiter.adaptive.as_ref().unwrap())
            .bucket
            .check()
            .is_err()
    );
    assert_eq!(limiter.bound(4), Bound::Rate);
}

#[test]
fn retry_after_pauses_and_unlimited_never_waits() {
    let limiter = SendLimiter::new(10.0, 1);
    limiter.throttled(Some(Duration::from_secs(30)));
    let paused = lock(limiter.adaptive.as_ref().unwrap())
        .paused_until
        .unwrap();
    assert!(paused > Instant::now() + Duration::from_secs(25));

    // A day's Retry-After (or reset) pauses the run for MAX_PAUSE at most.
    let limiter = SendLimiter::new(10.0, 1);
    limiter.throttled(Some(Duration::from_secs(86_400)));
    limiter.hold(Duration::from_secs(86_400));
    let paused = lock(limiter.adaptive.as_ref().unwrap())
        .paused_until
        .unwrap();
    assert!(paused <= Instant::now() + MAX_PAUSE);

    let unlimited = SendLimiter::unlimited();
    assert_eq!(unlimited.current_rate(), None);
    unlimited.throttled(Some(Duration::from_secs(30)));
    assert_eq!(SendLimiter::new(f64::INFINITY, 5).current_rate(), None);
}

#[test]
fn a_spent_budget_holds_every_sender_without_slowing_the_rate() {
    let gate = RunGate::new();
    let limiter = gate.configure(10.0, 5);
    gate.hold_for(Duration::from_secs(30));
    let state = lock(limiter.adaptive.as_ref().unwrap());
    assert!(state.paused_until.unwrap() > Instant::now() + Duration::from_secs(25));
    assert_eq!(state.current_rate, 10.0);
}
