//! Retry policy: exponential backoff with jitter, in integer microseconds
//! (no floats near this crate), fed to `backon` as a precomputed schedule.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Base delay before the first retry; doubled for each further one.
    pub initial_delay: Duration,
    /// Cap on any single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The delay before each retry: "equal jitter", half the exponential
    /// delay fixed plus a random part up to the other half, so clients that
    /// failed together do not come back together, yet never retry at once.
    pub fn delays(&self) -> std::vec::IntoIter<Duration> {
        let mut rng = rand::thread_rng();
        let cap = micros(self.max_delay);
        let mut schedule = Vec::with_capacity(self.max_retries as usize);
        let mut base = micros(self.initial_delay).min(cap);
        for _ in 0..self.max_retries {
            let half = base / 2;
            let jitter = if base > half {
                rng.gen_range(0..=base - half)
            } else {
                0
            };
            schedule.push(Duration::from_micros(half.saturating_add(jitter)));
            base = base.saturating_mul(2).min(cap);
        }
        schedule.into_iter()
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_respect_the_cap() {
        let policy = RetryPolicy {
            max_retries: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let delays: Vec<Duration> = policy.delays().collect();
            assert_eq!(delays.len(), 6);
            let bases = [100, 200, 400, 800, 1000, 1000];
            for (delay, base_ms) in delays.iter().zip(bases) {
                let base = Duration::from_millis(base_ms);
                assert!(
                    *delay >= base / 2 && *delay <= base,
                    "{delay:?} vs base {base:?}"
                );
            }
        }
    }

    #[test]
    fn zero_retries_means_no_delays() {
        let policy = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delays().count(), 0);
    }
}
