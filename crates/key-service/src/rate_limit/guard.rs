//! The brute-force guard: client networks, and beginnings of keys, that fail too many
//! verifications cool off.
//!
//! Failures are counted twice: by the client's network (an IPv4 address, or an IPv6 /64, which
//! one subscriber usually holds whole), against a flood from one place; and by the key's lead
//! (its first characters, [`KeyLead`]), against many addresses guessing the rest of one key. A
//! success resets neither count: a guesser holding one valid key cannot launder its failures.
//!
//! A block costs honest clients as little as it can: it only refuses what would need the
//! database. Keys this process verified recently (in its key cache) are judged as usual, so
//! users sharing a blocked address (behind one NAT, or a proxy that is not trusted) keep
//! working; an unknown key from a blocked network, or with a blocked lead, is refused with a
//! retry time and no lookup.

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use chrono::{DateTime, TimeDelta, Utc};
use key_core::KeyLead;

use crate::metrics::Metrics;
use crate::shards::Shards;

/// How many failed verifications a network (or a key lead) may make in a window by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 100;
/// The window the threshold counts failures in, by default: it starts with a failure and
/// ends this long after, whatever happened meanwhile.
pub const DEFAULT_FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// How long, by default, a network or lead that reached the threshold is refused.
pub const DEFAULT_COOLING_PERIOD: TimeDelta = TimeDelta::seconds(60);
/// How many networks (and, separately, how many key leads) the guard tracks at most, by
/// default.
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// How many entries a full table compares to choose the one that makes room.
const EVICTION_SAMPLE: usize = 8;

/// What the guard counts failures of: where they come from, and what they guessed at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Suspect {
    /// The client's address (grouped into its network by the guard), when known.
    pub client: Option<IpAddr>,
    /// The lead of the presented key, when it was well-formed.
    pub lead: Option<KeyLead>,
}

/// The guard's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BruteForceSettings {
    /// Failures within `window` that start a cooling period.
    pub threshold: u32,
    /// How long a count of failures runs from its first failure.
    pub window: TimeDelta,
    /// How long a network or lead is refused.
    pub cooling: TimeDelta,
    /// How many networks, and how many leads, are tracked at most (each).
    pub max_tracked: usize,
}

impl Default for BruteForceSettings {
    fn default() -> Self {
        BruteForceSettings {
            threshold: DEFAULT_FAILURE_THRESHOLD,
            window: DEFAULT_FAILURE_WINDOW,
            cooling: DEFAULT_COOLING_PERIOD,
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// The brute-force guard; see the module documentation.
///
/// Memory is bounded: `prune` forgets ended blocks and ended windows, and each table holds
/// about `max_tracked` entries (plus those blocked): at the cap, a new one takes the place of
/// an entry of its shard that is not blocked (the one that failed longest ago of a small
/// sample), so a flood of fresh addresses can neither switch the guard off nor lift a block.
#[derive(Debug)]
pub struct BruteForceGuard {
    networks: Tallies<IpAddr>,
    leads: Tallies<KeyLead>,
    limits: BruteForceSettings,
    blocks: AtomicU64,
}

impl BruteForceGuard {
    /// A guard with `limits`.
    pub fn new(limits: BruteForceSettings) -> Self {
        BruteForceGuard {
            networks: Tallies::new(),
            leads: Tallies::new(),
            limits: BruteForceSettings {
                threshold: limits.threshold.max(1),
                ..limits
            },
            blocks: AtomicU64::new(0),
        }
    }

    /// When `suspect`'s network or lead is cooling off at `now`: the latest instant one of
    /// them may try again.
    pub fn blocked_until(&self, suspect: Suspect, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let network = suspect
            .client
            .and_then(|ip| self.networks.blocked_until(&network_of(ip), now));
        let lead = suspect
            .lead
            .and_then(|lead| self.leads.blocked_until(&lead, now));
        network.max(lead)
    }

    /// Counts a failed verification of `suspect` at `now`. A block is counted in `metrics` and
    /// logged.
    pub fn record_failure(&self, suspect: Suspect, now: DateTime<Utc>, metrics: &Metrics) {
        if let Some(ip) = suspect.client {
            let network = network_of(ip);
            if self.networks.fail(network, now, &self.limits) {
                self.blocked(metrics);
                tracing::warn!(
                    client_network = %NetworkDisplay(network),
                    threshold = self.limits.threshold,
                    "client network blocked after failed verifications"
                );
            }
        }
        if let Some(lead) = suspect.lead
            && self.leads.fail(lead, now, &self.limits)
        {
            self.blocked(metrics);
            // The lead is part of a secret (maybe of a real key): never logged.
            tracing::warn!(
                threshold = self.limits.threshold,
                "a key prefix was blocked after failed verifications from any address"
            );
        }
    }

    fn blocked(&self, metrics: &Metrics) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        metrics.brute_force_block();
    }

    /// Forgets ended blocks and ended windows at `now`; returns how many entries were
    /// forgotten.
    pub fn prune(&self, now: DateTime<Utc>) -> usize {
        self.networks.prune(now, self.limits.window) + self.leads.prune(now, self.limits.window)
    }

    /// How many networks and key leads are tracked.
    pub fn entries(&self) -> usize {
        self.networks.entries.len() + self.leads.entries.len()
    }

    /// How many times a network or lead was blocked since start.
    pub fn blocks(&self) -> u64 {
        self.blocks.load(Ordering::Relaxed)
    }
}

impl Default for BruteForceGuard {
    fn default() -> Self {
        BruteForceGuard::new(BruteForceSettings::default())
    }
}

/// The network `ip` is judged as: an IPv4 address itself (also when mapped into IPv6), an IPv6
/// address its /64.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A network as an operator reads it: `192.0.2.7`, `2001:db8:1:2::/64`.
struct NetworkDisplay(IpAddr);

impl std::fmt::Display for NetworkDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// One network's (or lead's) failures in its current window, and its block.
#[derive(Debug, Clone, Copy)]
struct Tally {
    failures: u32,
    window_start: DateTime<Utc>,
    last_failure: DateTime<Utc>,
    blocked_until: Option<DateTime<Utc>>,
}

impl Tally {
    fn new(now: DateTime<Utc>) -> Self {
        Tally {
            failures: 0,
            window_start: now,
            last_failure: now,
            blocked_until: None,
        }
    }

    /// Whether this entry may go: its block ended, or (unblocked) its window ended.
    fn ended(&self, now: DateTime<Utc>, window: TimeDelta) -> bool {
        match self.blocked_until {
            Some(until) => until <= now,
            None => now - self.window_start >= window,
        }
    }
}

/// A table of tallies with a size cap.
#[derive(Debug)]
struct Tallies<K> {
    entries: Shards<K, Tally>,
    /// Whether the cap was reached since the last prune below it, so it is logged once.
    full: AtomicBool,
}

impl<K: std::hash::Hash + Eq + Copy> Tallies<K> {
    fn new() -> Self {
        Tallies {
            entries: Shards::new(),
            full: AtomicBool::new(false),
        }
    }

    fn blocked_until(&self, key: &K, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Nearly always nothing is failing: then no shard needs locking. (A count started by a
        // request running at this very instant is no count this request must see.)
        if self.entries.len() == 0 {
            return None;
        }
        self.entries.with(key, |map| {
            map.get(key)?.blocked_until.filter(|until| *until > now)
        })
    }

    /// Counts a failure of `key`; true when it starts a block.
    fn fail(&self, key: K, now: DateTime<Utc>, limits: &BruteForceSettings) -> bool {
        let at_cap = self.entries.len() >= limits.max_tracked;
        let (blocked, evicted) = self.entries.with(&key, |map| {
            let mut evicted = false;
            if at_cap && !map.contains_key(&key) {
                // Make room in this shard: of a few entries not blocked (a flood of fresh
                // addresses must not free a blocked one), the one that failed longest ago; a
                // sample, as a scan of the whole shard would cost every failure of a flood
                // microseconds under the lock. With none, the shard grows by one: blocks are
                // few, and end.
                let oldest = map
                    .iter()
                    .filter(|(_, tally)| tally.blocked_until.is_none_or(|until| until <= now))
                    .take(EVICTION_SAMPLE)
                    .min_by_key(|(_, tally)| tally.last_failure)
                    .map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                    evicted = true;
                }
            }
            let tally = map.entry(key).or_insert_with(|| Tally::new(now));
            if tally.ended(now, limits.window) {
                *tally = Tally::new(now);
            }
            tally.last_failure = now;
            if tally.blocked_until.is_some() {
                return (false, evicted);
            }
            tally.failures = tally.failures.saturating_add(1);
            if tally.failures >= limits.threshold {
                tally.blocked_until = Some(now + limits.cooling);
                return (true, evicted);
            }
            (false, evicted)
        });
        if evicted && !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_tracked = limits.max_tracked,
                "brute-force guard full: the entries that failed longest ago make room for new ones"
            );
        }
        blocked
    }

    fn prune(&self, now: DateTime<Utc>, window: TimeDelta) -> usize {
        let removed = self.entries.retain(|_, tally| !tally.ended(now, window));
        self.full.store(false, Ordering::Relaxed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use key_core::{ApiKey, Environment, RandomSource};

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    fn from(ip: &str) -> Suspect {
        Suspect {
            client: Some(ip.parse().unwrap()),
            lead: None,
        }
    }

    fn limits(threshold: u32) -> BruteForceSettings {
        BruteForceSettings {
            threshold,
            ..BruteForceSettings::default()
        }
    }

    #[test]
    fn the_guard_forgets_ended_windows_and_ended_blocks() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(limits(3));
        for _ in 0..3 {
            guard.record_failure(from("192.0.2.1"), at(12, 0, 0), &metrics);
        }
        guard.record_failure(from("192.0.2.2"), at(12, 0, 0), &metrics);
        assert_eq!(guard.entries(), 2);
        assert!(
            metrics
                .render()
                .contains("keyrack_brute_force_blocks_total 1")
        );

        // The block ends at 12:01; the lone failure's window at 12:15.
        assert_eq!(guard.prune(at(12, 0, 59)), 0);
        assert_eq!(guard.prune(at(12, 1, 0)), 1);
        assert_eq!(guard.blocked_until(from("192.0.2.1"), at(12, 1, 0)), None);
        assert_eq!(guard.prune(at(12, 14, 59)), 0);
        assert_eq!(guard.prune(at(12, 15, 0)), 1);
        assert_eq!(guard.entries(), 0);
    }

    #[test]
    fn failures_count_within_their_window_only() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(limits(3));
        guard.record_failure(from("192.0.2.1"), at(12, 0, 0), &metrics);
        guard.record_failure(from("192.0.2.1"), at(12, 14, 0), &metrics);
        // The window that began at 12:00 ended at 12:15: this failure starts a new one.
        guard.record_failure(from("192.0.2.1"), at(12, 15, 0), &metrics);
        assert_eq!(guard.blocks(), 0);
        guard.record_failure(from("192.0.2.1"), at(12, 15, 1), &metrics);
        guard.record_failure(from("192.0.2.1"), at(12, 15, 2), &metrics);
        assert_eq!(
            guard.blocked_until(from("192.0.2.1"), at(12, 15, 2)),
            Some(at(12, 16, 2))
        );
    }

    #[test]
    fn an_ipv6_client_is_judged_by_its_slash_64_and_a_mapped_ipv4_by_its_address() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(limits(3));
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            guard.record_failure(from(host), at(12, 0, 0), &metrics);
        }
        assert!(
            guard
                .blocked_until(from("2001:db8:1:2:abcd::1"), at(12, 0, 1))
                .is_some()
        );
        assert_eq!(
            guard.blocked_until(from("2001:db8:1:3::1"), at(12, 0, 1)),
            None
        );
        for _ in 0..3 {
            guard.record_failure(from("::ffff:192.0.2.9"), at(12, 0, 0), &metrics);
        }
        assert!(
            guard
                .blocked_until(from("192.0.2.9"), at(12, 0, 1))
                .is_some()
        );
    }

    #[test]
    fn at_the_cap_the_oldest_entries_make_room_and_blocks_stay() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(BruteForceSettings {
            threshold: 2,
            max_tracked: 10,
            ..BruteForceSettings::default()
        });
        // One blocked address, then a flood of fresh ones, each failing once.
        for _ in 0..2 {
            guard.record_failure(from("198.51.100.1"), at(12, 0, 0), &metrics);
        }
        for n in 0..5_000_u32 {
            let ip = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            guard.record_failure(
                Suspect {
                    client: Some(ip),
                    lead: None,
                },
                at(12, 0, 1),
                &metrics,
            );
        }
        // The table stays small (a shard may overshoot by its one new entry) ...
        assert!(guard.entries() <= 10 + 64, "{}", guard.entries());
        // ... the block survived the flood, and a new address is still counted and blocked.
        assert!(
            guard
                .blocked_until(from("198.51.100.1"), at(12, 0, 2))
                .is_some()
        );
        for _ in 0..2 {
            guard.record_failure(from("203.0.113.5"), at(12, 0, 2), &metrics);
        }
        assert!(
            guard
                .blocked_until(from("203.0.113.5"), at(12, 0, 2))
                .is_some()
        );
    }

    /// Replays `byte` forever: keys drawn from it share their first characters.
    #[derive(Debug)]
    struct Repeat(u8);

    impl RandomSource for Repeat {
        fn fill(&self, dest: &mut [u8]) -> Result<(), key_core::Error> {
            dest.fill(self.0);
            Ok(())
        }
    }

    #[test]
    fn a_key_lead_is_blocked_whatever_address_guesses_at_it() {
        let metrics = Metrics::new();
        let guard = BruteForceGuard::new(limits(3));
        let lead = ApiKey::generate(Environment::Live, &Repeat(7))
            .unwrap()
            .lead();
        for n in 1..=3 {
            let suspect = Suspect {
                client: Some(format!("192.0.2.{n}").parse().unwrap()),
                lead: Some(lead),
            };
            guard.record_failure(suspect, at(12, 0, 0), &metrics);
        }
        let fresh_address = Suspect {
            client: Some("203.0.113.77".parse().unwrap()),
            lead: Some(lead),
        };
        assert!(guard.blocked_until(fresh_address, at(12, 0, 1)).is_some());
        let other_lead = ApiKey::generate(Environment::Live, &Repeat(8))
            .unwrap()
            .lead();
        let other = Suspect {
            client: Some("203.0.113.77".parse().unwrap()),
            lead: Some(other_lead),
        };
        assert_eq!(guard.blocked_until(other, at(12, 0, 1)), None);
        assert!(!format!("{lead:?}").contains('7'), "{lead:?}");
    }
}
