//! When a credential is due for re-validation: between 80% and 90% of the period after it was
//! last checked (or written, if never checked), at a point fixed by its key. So a credential is
//! asked about again before a whole period passed, restarts do not move that time (it comes
//! from the stored `checked_at`), and credentials checked together spread over a tenth of the
//! period instead of coming due in one burst.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::domain::Metadata;

/// The earliest share of the period at which a check is due; the key's jitter adds up to
/// another [`SPREAD`].
const EARLIEST: f64 = 0.8;
const SPREAD: f64 = 0.1;

/// When the credential stored under `key` is next due, given `now` (a last check stamped in the
/// future, by a clock that was ahead, counts as made now).
pub fn due(m: &Metadata, key: &[u8], every: Duration, now: SystemTime) -> SystemTime {
    let last = m.validation.checked_at.unwrap_or(m.updated_at).min(now);
    last + every.mul_f64(EARLIEST + SPREAD * jitter(key))
}

/// A number in [0, 1) fixed by `key`: the same on every instance and across restarts (the top
/// 53 bits of its SHA-256; not a secret, only a spread).
fn jitter(key: &[u8]) -> f64 {
    let digest = Sha256::digest(key);
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
}

/// How often the schedule is looked at: a tenth of the period, between 100 ms and a minute, so
/// a credential is asked about at most that late and a store is scanned at most that often.
pub fn tick(every: Duration) -> Duration {
    (every / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_spread_and_below_one() {
        assert_eq!(jitter(b"cred/acme/a"), jitter(b"cred/acme/a"));
        let values: Vec<f64> = (0..1000)
            .map(|i| jitter(format!("cred/acme/{i}").as_bytes()))
            .collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let low = values.iter().filter(|v| **v < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below 0.5");
    }

    #[test]
    fn the_tick_is_a_tenth_of_the_period_within_bounds() {
        assert_eq!(tick(Duration::from_secs(2)), Duration::from_millis(200));
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(100));
        assert_eq!(tick(Duration::from_secs(6 * 3600)), Duration::from_secs(60));
    }
}
