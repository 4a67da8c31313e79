//! Test SMS quotas: at most N per credential and M per recipient in any sliding hour.
//!
//! A test SMS is billed to the stored account and goes to a number the caller chose, so without a
//! cap anyone who reaches the port could pump premium or foreign numbers, or phish under the
//! owner's sender. Counters live in memory, per process: a restart forgets them (documented), and
//! instances sharing a store count separately.
//!
//! Both quotas are checked and taken together, under one lock, so neither is consumed when the
//! other refuses. A reservation is returned unless committed: a test SMS counts once its POST is
//! attempted, whatever Twilio answers, because a timeout may hide a sent message.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::{Label, Owner, PhoneNumber};

const WINDOW: Duration = Duration::from_secs(3600);
/// Past this many tracked keys, stale ones are dropped (bounds memory under many recipients).
const PRUNE_AT: usize = 10_000;

pub struct TestSmsQuota {
    per_credential: u32,
    per_recipient: u32,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    credentials: HashMap<String, VecDeque<Instant>>,
    recipients: HashMap<String, VecDeque<Instant>>,
}

/// Which quota refused, and when a slot frees up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// `(subject, description)` of each quota that is used up.
    pub violations: Vec<(String, String)>,
    pub retry_after: Duration,
}

impl QuotaExceeded {
    /// Whole seconds until a slot frees, rounded up: retrying then succeeds.
    pub fn retry_secs(&self) -> u64 {
        let d = self.retry_after;
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

impl std::error::Error for QuotaExceeded {}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what: Vec<_> = self.violations.iter().map(|(_, d)| d.as_str()).collect();
        write!(
            f,
            "test SMS quota used up ({}); nothing was sent; retry in {} s",
            what.join("; "),
            self.retry_secs()
        )
    }
}

/// One test SMS counted against both quotas; given back on drop unless committed.
pub struct Reservation<'a> {
    quota: &'a TestSmsQuota,
    credential: String,
    recipient: String,
    at: Instant,
    committed: bool,
}

impl Reservation<'_> {
    /// The POST is going out: the SMS counts from now on, whatever happens next.
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut counts = self.quota.lock();
        let Counts {
            credentials,
            recipients,
        } = &mut *counts;
        for (map, key) in [
            (credentials, &self.credential),
            (recipients, &self.recipient),
        ] {
            if let Some(times) = map.get_mut(key) {
                if let Some(i) = times.iter().rposition(|t| *t == self.at) {
                    times.remove(i);
                }
            }
        }
    }
}

impl TestSmsQuota {
    pub fn new(per_credential: u32, per_recipient: u32) -> Self {
        Self {
            per_credential,
            per_recipient,
            counts: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one test SMS of `owner/label`'s quota and of `to`'s, or says which is used up.
    pub fn reserve(
        &self,
        owner: &Owner,
        label: &Label,
        to: &PhoneNumber,
    ) -> Result<Reservation<'_>, QuotaExceeded> {
        self.reserve_at(owner, label, to, Instant::now())
    }

    fn reserve_at(
        &self,
        owner: &Owner,
        label: &Label,
        to: &PhoneNumber,
        now: Instant,
    ) -> Result<Reservation<'_>, QuotaExceeded> {
        let credential = format!("{owner}/{label}");
        let recipient = to.as_str().to_owned();
        let mut counts = self.lock();
        if counts.credentials.len() + counts.recipients.len() > PRUNE_AT {
            counts.prune(now);
        }
        let mut violations = Vec::new();
        let mut retry_after = Duration::ZERO;
        let Counts {
            credentials,
            recipients,
        } = &mut *counts;
        let checks = [
            (
                credentials.entry(credential.clone()).or_default(),
                self.per_credential,
                format!("credential:{owner}/{label}"),
                format!(
                    "at most {} test SMS per credential per hour",
                    self.per_credential
                ),
            ),
            (
                recipients.entry(recipient.clone()).or_default(),
                self.per_recipient,
                "recipient:test_recipient".to_owned(),
                format!(
                    "at most {} test SMS per recipient per hour",
                    self.per_recipient
                ),
            ),
        ];
        let mut taken = Vec::new();
        for (times, limit, subject, description) in checks {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                let frees = times
                    .front()
                    .map_or(WINDOW, |t| WINDOW - now.duration_since(*t));
                retry_after = retry_after.max(frees);
                violations.push((subject, description));
            }
            taken.push(times);
        }
        if !violations.is_empty() {
            return Err(QuotaExceeded {
                violations,
                retry_after,
            });
        }
        for times in taken {
            times.push_back(now);
        }
        drop(counts);
        Ok(Reservation {
            quota: self,
            credential,
            recipient,
            at: now,
            committed: false,
        })
    }
}

impl Counts {
    fn prune(&mut self, now: Instant) {
        for map in [&mut self.credentials, &mut self.recipients] {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(label: &str, to: &str) -> (Owner, Label, PhoneNumber) {
        (
            Owner::parse("acme").unwrap(),
            Label::parse(label).unwrap(),
            PhoneNumber::parse(to).unwrap(),
        )
    }

    #[test]
    fn per_credential_and_per_recipient_limits_slide_over_an_hour() {
        let q = TestSmsQuota::new(5, 3);
        let t0 = Instant::now();
        // 3 to one number, then that number is used up; the credential has 2 left.
        let (o, l, to) = ids("prod", "+6591234567");
        for _ in 0..3 {
            q.reserve_at(&o, &l, &to, t0).unwrap().commit();
        }
        let e = q.reserve_at(&o, &l, &to, t0).err().unwrap();
        assert_eq!(e.violations.len(), 1);
        assert!(e.violations[0].1.contains("per recipient"), "{e}");
        assert_eq!(e.retry_after, WINDOW);
        for n in ["+6591234568", "+6591234569"] {
            let (o, l, to) = ids("prod", n);
            q.reserve_at(&o, &l, &to, t0).unwrap().commit();
        }
        let (o, l, to) = ids("prod", "+6591234570");
        let e = q
            .reserve_at(&o, &l, &to, t0 + Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(e.violations[0].1.contains("per credential"), "{e}");
        assert_eq!(e.retry_after, WINDOW - Duration::from_secs(60));
        // Another credential is not affected; an hour later the first one is free again.
        let (o, other, to2) = ids("other", "+6591234570");
        q.reserve_at(&o, &other, &to2, t0).unwrap().commit();
        q.reserve_at(&o, &l, &to, t0 + WINDOW).unwrap().commit();
    }

    #[test]
    fn a_reservation_not_committed_is_given_back() {
        let q = TestSmsQuota::new(1, 1);
        let (o, l, to) = ids("prod", "+6591234567");
        drop(q.reserve(&o, &l, &to).unwrap());
        let r = q.reserve(&o, &l, &to).unwrap();
        assert!(
            q.reserve(&o, &l, &to).is_err(),
            "both quotas are taken while reserved"
        );
        r.commit();
        assert!(q.reserve(&o, &l, &to).is_err());
    }

    #[test]
    fn a_refusal_takes_nothing_from_the_other_quota() {
        let q = TestSmsQuota::new(1, 5);
        let (o, l, to) = ids("prod", "+6591234567");
        q.reserve(&o, &l, &to).unwrap().commit();
        for _ in 0..10 {
            assert!(q.reserve(&o, &l, &to).is_err());
        }
        assert_eq!(q.lock().recipients["+6591234567"].len(), 1);
    }

    #[test]
    fn zero_turns_test_sms_off() {
        let q = TestSmsQuota::new(0, 3);
        let (o, l, to) = ids("prod", "+6591234567");
        assert!(q.reserve(&o, &l, &to).is_err());
    }
}
