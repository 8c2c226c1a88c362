//! Each member's share of what this node serves to other members (the peer
//! API's Known and Inspect, the sync protocol), so that one member can never
//! starve the others.
//!
//! Per member: a token bucket (`per_sec` requests a second on average,
//! `burst` at once) and a cap on requests in progress. A request beyond
//! either is refused at once, before any real work, with a hint when to
//! retry; other members' requests are not slowed by it. A refusal for pace
//! is not a disclosure decision, so it is counted in a metric, not written
//! to the audit log (a flood must not fill the log). Calls nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handbereik_keys::MemberId;

/// The per-member bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberLimits {
    /// Requests per second, on average.
    pub per_sec: u32,
    /// Requests at once above the average (the bucket's size).
    pub burst: u32,
    /// Requests in progress at once.
    pub in_flight: u32,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The member has this many requests in progress already.
    InFlight(u32),
    /// The member asks faster than its rate; retry after this long.
    TooFast(Duration),
}

impl Busy {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Busy::InFlight(_) => "in_flight",
            Busy::TooFast(_) => "rate",
        }
    }

    /// When the member may try again.
    pub fn retry_after(self) -> Duration {
        match self {
            Busy::InFlight(_) => Duration::from_millis(50),
            Busy::TooFast(after) => after,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
    in_flight: u32,
}

/// Admits or refuses each member's requests. Cheap to share.
pub struct Limiter {
    limits: MemberLimits,
    buckets: Mutex<HashMap<MemberId, Bucket>>,
}

/// A request in progress; its slot is given back when dropped.
pub struct Permit {
    limiter: Arc<Limiter>,
    member: MemberId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut buckets) = self.limiter.buckets.lock()
            && let Some(bucket) = buckets.get_mut(&self.member)
        {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
    }
}

impl Limiter {
    /// A limiter with these bounds.
    pub fn new(limits: MemberLimits) -> Arc<Self> {
        Arc::new(Limiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Admits one request of `member` now, or says why not.
    pub fn admit(self: &Arc<Self>, member: &MemberId) -> Result<Permit, Busy> {
        self.admit_at(member, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, member: &MemberId, now: Instant) -> Result<Permit, Busy> {
        let per_sec = f64::from(self.limits.per_sec.max(1));
        let burst = f64::from(self.limits.burst.max(1));
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > 1024 && !buckets.contains_key(member) {
            // Forget members that are idle and full again: the map holds only
            // those asking now.
            buckets.retain(|_, b| {
                b.in_flight > 0
                    || b.tokens + per_sec * now.duration_since(b.last).as_secs_f64() < burst
            });
        }
        let bucket = buckets.entry(member.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
            in_flight: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.last = now;
        if bucket.in_flight >= self.limits.in_flight.max(1) {
            return Err(Busy::InFlight(bucket.in_flight));
        }
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / per_sec;
            return Err(Busy::TooFast(Duration::from_secs_f64(wait.max(0.001))));
        }
        bucket.tokens -= 1.0;
        bucket.in_flight += 1;
        Ok(Permit {
            limiter: self.clone(),
            member: member.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u32) -> MemberId {
        MemberId::parse(&format!("{:020}", 1000 + n)).unwrap()
    }

    #[test]
    fn a_member_beyond_its_rate_is_refused_and_others_are_not() {
        let limiter = Limiter::new(MemberLimits {
            per_sec: 10,
            burst: 5,
            in_flight: 100,
        });
        let now = Instant::now();
        let flooder = member(1);
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(limiter.admit_at(&flooder, now).unwrap());
        }
        let refused = limiter.admit_at(&flooder, now).err().unwrap();
        assert!(matches!(refused, Busy::TooFast(d) if d <= Duration::from_millis(100)));
        assert!(
            limiter.admit_at(&member(2), now).is_ok(),
            "another member is not slowed"
        );
        // A tenth of a second later one more token has come.
        assert!(
            limiter
                .admit_at(&flooder, now + Duration::from_millis(100))
                .is_ok()
        );
    }

    #[test]
    fn requests_in_progress_are_capped_per_member() {
        let limiter = Limiter::new(MemberLimits {
            per_sec: 1000,
            burst: 1000,
            in_flight: 2,
        });
        let now = Instant::now();
        let a = limiter.admit_at(&member(1), now).unwrap();
        let _b = limiter.admit_at(&member(1), now).unwrap();
        assert_eq!(
            limiter.admit_at(&member(1), now).err(),
            Some(Busy::InFlight(2))
        );
        drop(a);
        assert!(
            limiter.admit_at(&member(1), now).is_ok(),
            "a slot is given back"
        );
    }
}
