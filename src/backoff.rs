//! Exponential backoff between attempts, for every loop that retries
//! (reconnecting to Redis, removing a container, restarting an actor),
//! with jitter: each wait is a random point of the upper half of its delay,
//! so processes that failed together (every worker when Redis went away)
//! do not all retry at the same instant.

use std::time::Duration;

/// Delays that double from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The delay before the `n`th retry (0 for the first).
    pub fn nth(&self, n: u32) -> Duration {
        self.first
            .saturating_mul(2u32.saturating_pow(n.min(31)))
            .min(self.max)
    }

    /// The next delay; each call doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for the next delay, jittered.
    pub async fn wait(&mut self) {
        tokio::time::sleep(jittered(self.next_delay())).await;
    }

    /// The next delay is `first` again (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// A random point of `delay`'s upper half ("equal jitter"): at least half
/// of it, so a backoff still backs off.
pub fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        assert_eq!(b.nth(0), ms(100));
        assert_eq!(b.nth(2), ms(400));
        assert_eq!(b.nth(40), ms(500));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_spreads() {
        let delay = Duration::from_millis(1000);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(delay)).collect();
        assert!(waits.iter().all(|w| *w >= delay / 2 && *w <= delay));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "{} distinct waits", distinct.len());
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
