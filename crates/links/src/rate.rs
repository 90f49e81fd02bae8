//! The per-link POST limit: at most `limit` POSTs in any `window` seconds for one link, in
//! memory, in a map of bounded size. The clock is a parameter (unix seconds), so tests step it.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

/// POSTs allowed per link in one window.
pub const POSTS_PER_MINUTE: usize = 10;

/// Links tracked at once; past it, idle links are forgotten first, then the least recent one.
pub const MAX_TRACKED_LINKS: usize = 4096;

/// A sliding-window limiter keyed by link. Only links with a valid signature reach it, so an
/// attacker cannot fill the map with garbage; the bound holds anyway.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window_seconds: i64,
    max_links: usize,
    /// The SHA-256 of the token (the map never holds the bearer token itself) to the times of
    /// its allowed POSTs within the window, oldest first.
    recent: HashMap<[u8; 32], VecDeque<i64>>,
}

impl RateLimiter {
    pub fn new(limit: usize, window_seconds: i64, max_links: usize) -> RateLimiter {
        RateLimiter {
            limit,
            window_seconds,
            max_links,
            recent: HashMap::new(),
        }
    }

    /// The broker's limit: 10 POSTs a minute per link.
    pub fn per_minute() -> RateLimiter {
        RateLimiter::new(POSTS_PER_MINUTE, 60, MAX_TRACKED_LINKS)
    }

    /// Whether one more POST for `link` at `now` is allowed; an allowed POST is counted.
    pub fn allow(&mut self, link: &str, now: i64) -> bool {
        let key: [u8; 32] = Sha256::digest(link.as_bytes()).into();
        if !self.recent.contains_key(&key) && self.recent.len() >= self.max_links {
            self.make_room(now);
        }
        let window = self.window_seconds;
        let times = self.recent.entry(key).or_default();
        while times.front().is_some_and(|&t| now - t >= window) {
            times.pop_front();
        }
        if times.len() >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }

    /// How many links are tracked (for the bound's tests).
    pub fn tracked(&self) -> usize {
        self.recent.len()
    }

    /// Forgets links with no POST in the window; if none is idle, the least recently used one.
    fn make_room(&mut self, now: i64) {
        let window = self.window_seconds;
        self.recent
            .retain(|_, times| times.back().is_some_and(|&t| now - t < window));
        if self.recent.len() < self.max_links {
            return;
        }
        let least_recent = self
            .recent
            .iter()
            .min_by_key(|(_, times)| times.back().copied().unwrap_or(i64::MIN))
            .map(|(key, _)| *key);
        if let Some(key) = least_recent {
            self.recent.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_posts_a_minute_then_refused_until_the_oldest_leaves_the_window() {
        let mut limiter = RateLimiter::per_minute();
        for second in 0..10 {
            assert!(limiter.allow("link-a", 1_000 + second), "{second}");
        }
        assert!(!limiter.allow("link-a", 1_010));
        assert!(!limiter.allow("link-a", 1_059));
        // The first POST (at 1000) is a minute old at 1060: one more is allowed, not two.
        assert!(limiter.allow("link-a", 1_060));
        assert!(!limiter.allow("link-a", 1_060));
        assert!(limiter.allow("link-a", 1_061));
    }

    #[test]
    fn each_link_has_its_own_budget() {
        let mut limiter = RateLimiter::per_minute();
        for _ in 0..10 {
            assert!(limiter.allow("link-a", 5));
        }
        assert!(!limiter.allow("link-a", 5));
        assert!(limiter.allow("link-b", 5));
    }

    #[test]
    fn refused_posts_do_not_extend_the_wait() {
        let mut limiter = RateLimiter::new(1, 60, 8);
        assert!(limiter.allow("link-a", 0));
        for second in 1..60 {
            assert!(!limiter.allow("link-a", second));
        }
        assert!(limiter.allow("link-a", 60));
    }

    #[test]
    fn the_map_stays_bounded_and_forgets_idle_links_first() {
        let mut limiter = RateLimiter::new(2, 60, 3);
        assert!(limiter.allow("old", 0));
        assert!(limiter.allow("busy", 50));
        assert!(limiter.allow("busy", 50));
        assert!(limiter.allow("recent", 55));
        // "old" is idle at 70: it goes, "busy" keeps its count.
        assert!(limiter.allow("new", 70));
        assert_eq!(limiter.tracked(), 3);
        assert!(!limiter.allow("busy", 70));
        // None idle at 71: the least recent ("busy", at 50) goes.
        assert!(limiter.allow("newer", 71));
        assert_eq!(limiter.tracked(), 3);
        for n in 0..100 {
            limiter.allow(&format!("flood-{n}"), 72);
            assert!(limiter.tracked() <= 3);
        }
    }
}
