//! A small seeded PRNG (SplitMix64) for backoff jitter. Determinism matters more than
//! quality here: the same seed gives the same schedule, so tests are exact.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly random duration in `[0, upper]`, at nanosecond resolution.
    pub(crate) fn up_to(&mut self, upper: Duration) -> Duration {
        let nanos = u64::try_from(upper.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Multiply-shift maps 64 random bits onto [0, nanos] without a modulo bias worth
        // caring about at these magnitudes.
        let pick = ((u128::from(self.next_u64()) * (u128::from(nanos) + 1)) >> 64) as u64;
        Duration::from_nanos(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_range_and_is_deterministic() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        let upper = Duration::from_millis(250);
        for _ in 0..10_000 {
            let x = a.up_to(upper);
            assert!(x <= upper);
            assert_eq!(x, b.up_to(upper));
        }
        assert_eq!(a.up_to(Duration::ZERO), Duration::ZERO);
        assert!(a.up_to(Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn spreads_out() {
        let mut j = Jitter::new(1);
        let upper = Duration::from_secs(1);
        let low = (0..1000)
            .filter(|_| j.up_to(upper) < Duration::from_millis(500))
            .count();
        assert!((400..600).contains(&low), "{low}");
    }
}
