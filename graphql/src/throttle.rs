//! Sign-in throttling that an attacker cannot turn against the account's owner.
//!
//! Failures are counted per **(email, client address)** and per **client address**
//! (across emails), and each attempt is counted *before* its password is hashed — under
//! one lock, so 40 concurrent wrong passwords cannot all slip past a check made before
//! any of them failed. A success gives its count back.
//!
//! - A pair has [`PAIR_FREE_FAILURES`] failures free; after that each attempt waits
//!   for a backoff that doubles with every further failure (1 s, 2 s, 4 s, … at most
//!   [`BACKOFF_MAX`]). A refused attempt does not count.
//! - An address has [`ADDRESS_FAILURES_MAX`] failures per [`ADDRESS_WINDOW`] across
//!   emails, then is refused until its window ends.
//! - Refusals are `LIMIT_EXCEEDED` with `extensions.retryAfterSeconds`.
//!
//! So a correct password from an address that has not failed is never refused: the
//! failures of someone else's address are not the owner's. IPv6 addresses count by
//! their /64 (one host's usual allocation). Both maps are bounded: past
//! [`ENTRIES_MAX`] entries the expired ones are dropped, and if none has expired the
//! attempt is refused rather than a counter forgotten.

use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one (email, address) pair before the backoff starts.
pub const PAIR_FREE_FAILURES: u32 = 5;
/// The longest backoff of a pair.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// How long a pair's failures are remembered after its last one.
pub const PAIR_MEMORY: Duration = Duration::from_secs(60 * 60);
/// Failures from one address, across emails, per window.
pub const ADDRESS_FAILURES_MAX: u32 = 50;
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept per map.
pub const ENTRIES_MAX: usize = 100_000;

#[derive(Clone, Copy)]
struct Pair {
    failures: u32,
    last: Instant,
}

#[derive(Clone, Copy)]
struct Address {
    failures: u32,
    since: Instant,
}

#[derive(Default)]
struct State {
    pairs: HashMap<(String, Option<IpAddr>), Pair>,
    addresses: HashMap<IpAddr, Address>,
}

#[derive(Default)]
pub struct SignInThrottle(Mutex<State>);

/// An attempt admitted by [`SignInThrottle::begin`], counted as a failure until
/// [`SignInThrottle::succeeded`] gives it back.
#[must_use]
pub struct Attempt {
    key: (String, Option<IpAddr>),
}

/// The key an address counts under: itself, or its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(
            v6.to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        ),
        v4 => v4,
    }
}

fn backoff(failures: u32) -> Duration {
    if failures < PAIR_FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (failures - PAIR_FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << exp).min(BACKOFF_MAX)
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl SignInThrottle {
    /// Admits a sign-in attempt for `email` from `address`, counting it as a failure,
    /// or refuses it with when to try again.
    pub fn begin(&self, email: &str, address: Option<IpAddr>) -> ApiResult<Attempt> {
        self.begin_at(email, address, Instant::now())
    }

    fn begin_at(&self, email: &str, address: Option<IpAddr>, now: Instant) -> ApiResult<Attempt> {
        let address = address.map(bucket);
        let mut st = self.0.lock().map_err(ApiError::internal)?;
        let key = (email.to_owned(), address);
        if let Some(p) = st.pairs.get(&key) {
            let open_at = p.last + backoff(p.failures);
            if now < open_at {
                return Err(ApiError::retry_after(
                    "too many failed sign-ins for this email from this address; try again later",
                    secs(open_at - now),
                ));
            }
        }
        if let Some(ip) = address
            && let Some(a) = st.addresses.get(&ip)
            && now < a.since + ADDRESS_WINDOW
            && a.failures >= ADDRESS_FAILURES_MAX
        {
            return Err(ApiError::retry_after(
                "too many failed sign-ins from this address; try again later",
                secs(a.since + ADDRESS_WINDOW - now),
            ));
        }
        if st.pairs.len() >= ENTRIES_MAX {
            st.pairs
                .retain(|_, p| now < p.last + backoff(p.failures) + PAIR_MEMORY);
        }
        if st.addresses.len() >= ENTRIES_MAX {
            st.addresses.retain(|_, a| now < a.since + ADDRESS_WINDOW);
        }
        let full = (st.pairs.len() >= ENTRIES_MAX && !st.pairs.contains_key(&key))
            || address.is_some_and(|ip| {
                st.addresses.len() >= ENTRIES_MAX && !st.addresses.contains_key(&ip)
            });
        if full {
            return Err(ApiError::retry_after(
                "too many sign-ins are failing; try again later",
                60,
            ));
        }
        let p = st.pairs.entry(key.clone()).or_insert(Pair {
            failures: 0,
            last: now,
        });
        p.failures += 1;
        p.last = now;
        if let Some(ip) = address {
            let a = st.addresses.entry(ip).or_insert(Address {
                failures: 0,
                since: now,
            });
            if now >= a.since + ADDRESS_WINDOW {
                *a = Address {
                    failures: 0,
                    since: now,
                };
            }
            a.failures += 1;
        }
        Ok(Attempt { key })
    }

    /// The attempt's password was right: its pair starts over, and the address gets
    /// back the failure counted for it.
    pub fn succeeded(&self, attempt: Attempt) {
        if let Ok(mut st) = self.0.lock() {
            st.pairs.remove(&attempt.key);
            if let Some(ip) = attempt.key.1
                && let Some(a) = st.addresses.get_mut(&ip)
            {
                a.failures = a.failures.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn an_attacker_cannot_lock_out_the_owner() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..PAIR_FREE_FAILURES {
            let _ = t
                .begin_at("owner@x", ip("203.0.113.1"), now)
                .expect("admitted");
        }
        let refused = t
            .begin_at("owner@x", ip("203.0.113.1"), now)
            .err()
            .expect("the attacker's pair waits");
        assert_eq!(refused.retry_after_seconds, Some(1));
        // The owner, from their own address, signs in.
        let a = t
            .begin_at("owner@x", ip("198.51.100.2"), now)
            .expect("owner");
        t.succeeded(a);
        // The attacker's backoff doubles with each failure after the free ones.
        let later = now + Duration::from_secs(1);
        let _ = t
            .begin_at("owner@x", ip("203.0.113.1"), later)
            .expect("after 1 s");
        let refused = t
            .begin_at("owner@x", ip("203.0.113.1"), later)
            .err()
            .expect("waits again");
        assert_eq!(refused.retry_after_seconds, Some(2));
    }

    #[test]
    fn attempts_count_before_the_hash_so_concurrent_ones_cannot_slip_through() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        // 40 attempts begun before any finished: only the free ones are admitted.
        let admitted = (0..40)
            .filter(|_| t.begin_at("a@x", ip("203.0.113.1"), now).is_ok())
            .count();
        assert_eq!(admitted, PAIR_FREE_FAILURES as usize);
    }

    #[test]
    fn an_address_is_capped_across_emails_and_ipv6_counts_by_its_64() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..ADDRESS_FAILURES_MAX {
            let host = format!("2001:db8:1:2::{:x}", i + 1);
            let _ = t
                .begin_at(&format!("u{i}@x"), ip(&host), now)
                .expect("admitted");
        }
        let refused = t
            .begin_at("new@x", ip("2001:db8:1:2::ffff"), now)
            .err()
            .expect("the /64 is capped");
        assert!(refused.retry_after_seconds.is_some_and(|s| s > 0));
        assert!(t.begin_at("new@x", ip("2001:db8:1:3::1"), now).is_ok());
        // The window passes.
        assert!(
            t.begin_at("new@x", ip("2001:db8:1:2::1"), now + ADDRESS_WINDOW)
                .is_ok()
        );
    }
}
