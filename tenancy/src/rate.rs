//! A token bucket for per-tenant event quotas, driven by explicit times so it is testable
//! without clocks.

use std::time::Duration;

/// Events per second with a one-second burst. A request larger than the burst is let through
/// when the bucket is full and leaves it in debt, so big requests are slowed, never starved.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket at time `now` (time since any fixed origin).
    pub fn full(rate: u32, now: Duration) -> Self {
        Self {
            tokens: f64::from(rate),
            last: now,
        }
    }

    /// Takes `n` events at `now` under `rate` per second, or says how long to wait.
    pub fn take(&mut self, n: u64, rate: u32, now: Duration) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        let n = n as f64;
        let needed = n.min(rate);
        if self.tokens >= needed {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - self.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn the_rate_holds_over_time() {
        let mut bucket = TokenBucket::full(100, S(0.0));
        assert!(bucket.take(100, 100, S(0.0)).is_ok(), "the burst");
        let wait = bucket.take(10, 100, S(0.0)).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(bucket.take(10, 100, S(0.1)).is_ok(), "refilled 10 in 100 ms");
        let mut granted = 0;
        for ms in 0..10_000 {
            if bucket.take(1, 100, S(0.1 + f64::from(ms) / 1000.0)).is_ok() {
                granted += 1;
            }
        }
        assert!(
            (990..=1010).contains(&granted),
            "about 100/s over 10 s, got {granted}"
        );
    }

    #[test]
    fn oversized_requests_pass_on_a_full_bucket_and_leave_debt() {
        let mut bucket = TokenBucket::full(100, S(0.0));
        assert!(bucket.take(500, 100, S(0.0)).is_ok());
        let wait = bucket.take(1, 100, S(0.0)).expect_err("in debt");
        assert!((wait.as_secs_f64() - 4.01).abs() < 1e-6, "{wait:?}");
        assert!(bucket.take(1, 100, S(4.01)).is_ok());
    }
}
