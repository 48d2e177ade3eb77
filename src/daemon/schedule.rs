//! When the next pass is due: pure arithmetic, no clock.

use std::time::Duration;

/// The delay before the next pass.
///
/// After a pass that completed: `interval` plus `jitter * sample`, where
/// `sample` in [0, 1) comes from the caller. After `failures` failed passes
/// in a row: `retry_initial` doubled for each earlier failure, never more
/// than `interval`.
pub fn next_delay(
    interval: Duration,
    jitter: Duration,
    sample: f64,
    retry_initial: Duration,
    failures: u32,
) -> Duration {
    if failures == 0 {
        let sample = sample.clamp(0.0, 1.0);
        return interval + jitter.mul_f64(sample);
    }
    let doublings = (failures - 1).min(32);
    let backoff = retry_initial.saturating_mul(1u32 << doublings.min(31));
    backoff.min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_completed_pass_waits_the_interval_plus_some_jitter() {
        assert_eq!(
            next_delay(15 * MIN, 30 * Duration::from_secs(1), 0.5, MIN, 0),
            15 * MIN + Duration::from_secs(15)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_interval() {
        let delays: Vec<u64> = (1..=6)
            .map(|failures| {
                next_delay(
                    15 * MIN,
                    Duration::ZERO,
                    0.0,
                    Duration::from_secs(30),
                    failures,
                )
                .as_secs()
            })
            .collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900]);
    }

    proptest! {
        #[test]
        fn delays_stay_within_their_bounds(
            interval in 1u64..100_000,
            jitter in 0u64..1000,
            sample in 0.0f64..1.0,
            retry in 1u64..1000,
            failures in 0u32..1000,
        ) {
            let interval = Duration::from_secs(interval);
            let jitter = Duration::from_secs(jitter);
            let delay = next_delay(interval, jitter, sample, Duration::from_secs(retry), failures);
            if failures == 0 {
                prop_assert!(delay >= interval && delay <= interval + jitter);
            } else {
                prop_assert!(delay <= interval && !delay.is_zero());
            }
        }
    }
}
