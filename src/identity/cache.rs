//! The token cache, shared by every instance and replica through the key-value store, with
//! single-flight refresh.
//!
//! Spin starts an instance per request, so without coordination every request of a cold burst
//! fetches its own token (IMDS allows 5 concurrent / 20 per second per VM). Here one instance
//! fetches while the others wait briefly for its result:
//!
//! - An entry holds the token, and a *lease* (owner, expiry) while someone is fetching. A warm
//!   request reads the entry once and writes nothing.
//! - A lease on an existing entry is taken by compare-and-swap against the bytes just read:
//!   exactly one of the contenders wins on both of Spin's stores (SQLite `UPDATE … WHERE value =
//!   old`, Redis `WATCH`/`MULTI`).
//! - An absent entry cannot be locked that way (on SQLite a swap from an absent key is an
//!   upsert: everybody "wins"), so the right to create it goes to whoever draws ticket 1 from an
//!   atomic counter (`increment` is atomic on both stores), per ten-minute period. An entry lost
//!   after its ticket was drawn (evicted under `allkeys-lru`, a write that failed) is noticed
//!   by its waiters within a second; they then draw from a counter per ten-second window, and
//!   the one that draws 1 takes the lease and fetches for all.
//! - Leases expire, so a crashed fetcher blocks nobody for longer than the lease; a waiter that
//!   gives up takes the lease itself before fetching. Only a store that holds no lease at all
//!   for twice the wait leaves a waiter fetching on its own.
//! - While a still-usable token exists nobody waits: the lease holder refreshes, the others keep
//!   serving the old token. A failed refresh pauses refreshing for 30 s (as the Azure SDKs) and
//!   keeps serving the old token.
//! - A failed fetch is published to the waiters of that lease, so a misconfiguration costs one
//!   upstream call per burst, not one per request.

use crate::errors::Problem;
use crate::identity::store::{Store, Swap};
use crate::identity::token::Token;
use crate::net::clock::Clock;
use crate::wire::typed_json;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Pause between refresh attempts after a failed refresh.
const REFRESH_PAUSE: u64 = 30;
/// Counter periods for creating an absent entry.
const TICKET_PERIOD: u64 = 600;
/// Windows of the counter that decides who recreates an entry lost after its ticket was drawn.
const TAKEOVER_WINDOW: u64 = 10;
/// How long a waiter tolerates a missing entry: its creator writes it right after drawing the
/// ticket, so absence past this means the write failed or the entry was evicted.
const ABSENT_GRACE: Duration = Duration::from_secs(1);
/// First and longest pause between looks at an entry someone else is filling.
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(40);

/// Builds a cache key from its parts, in one place: `tb2|kind|part|part…`. Parts are ids, URLs
/// and resource names; `|` cannot occur in them.
pub(crate) fn key(kind: &str, parts: &[&str]) -> String {
    let mut key = format!("tb2|{kind}");
    for part in parts {
        key.push('|');
        key.push_str(part);
    }
    key
}

/// A failed fetch as stored for its waiters. Replicas of two versions share one store during a
/// rollout, so the members and their order are a contract.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredProblem {
    status: u16,
    code: String,
    title: String,
    detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// What the store holds for one token: a JSON object (absent or `null` members read as empty).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, deserialize_with = "typed_json::null_as_default")]
    expires_on: u64,
    #[serde(default, deserialize_with = "typed_json::null_as_default")]
    refresh_at: u64,
    /// Unix seconds until which `owner` holds the right to fetch.
    #[serde(default, deserialize_with = "typed_json::null_as_default")]
    lease: u64,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "typed_json::null_as_default"
    )]
    owner: String,
    /// The failure of the last fetch by `owner`, for the requests that waited on it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "typed_json::optional_object"
    )]
    failed: Option<StoredProblem>,
}

impl Entry {
    /// `None` for anything but an entry of this shape (a member of another type, one that
    /// occurs twice): such an entry is treated as absent, and replaced.
    fn decode(bytes: &[u8]) -> Option<Entry> {
        typed_json::object(bytes).ok()
    }
    fn encode(&self) -> Vec<u8> {
        typed_json::to_string(self).into_bytes()
    }
    fn token(&self) -> Option<Token> {
        Some(Token {
            secret: self.token.clone()?,
            expires_on: self.expires_on,
            refresh_at: self.refresh_at,
        })
    }
    fn holding(token: &Token) -> Entry {
        Entry {
            token: Some(token.secret.clone()),
            expires_on: token.expires_on,
            refresh_at: token.refresh_at,
            ..Entry::default()
        }
    }
    fn leased(&self, owner: &str, until: u64) -> Entry {
        Entry {
            token: self.token.clone(),
            expires_on: self.expires_on,
            refresh_at: self.refresh_at,
            lease: until,
            owner: owner.to_string(),
            failed: None,
        }
    }
    fn lease_active(&self, now: u64) -> bool {
        self.lease > now
    }
}

/// An entry as the cache reads it, written back: `None` when it does not read (the cache then
/// treats it as absent). For the fuzz targets.
pub(crate) fn reencode(bytes: &[u8]) -> Option<Vec<u8>> {
    Entry::decode(bytes).map(|e| e.encode())
}

/// The cache of one request: the store (if it opened), the clock, who we are, and how long a
/// lease and a wait may last.
pub(crate) struct Cache<'a> {
    pub store: Option<&'a dyn Store>,
    pub clock: &'a dyn Clock,
    /// Unique per request: the lease owner.
    pub owner: &'a str,
    pub lease_secs: u64,
    /// How long a waiter waits for another instance's fetch before fetching itself.
    pub max_wait: Duration,
}

/// One read of a key: the bytes as stored (what a swap compares against) and their decoding.
struct Stored {
    raw: Option<Vec<u8>>,
    entry: Option<Entry>,
}

impl Stored {
    fn read(store: &dyn Store, key: &str) -> Stored {
        let raw = store.get(key);
        let entry = raw.as_deref().and_then(Entry::decode);
        Stored { raw, entry }
    }
}

impl Cache<'_> {
    /// A usable token for `key`: from the cache while fresh, otherwise fetched once across
    /// every instance sharing the store.
    pub(crate) fn token(
        &self,
        key: &str,
        fetch: &mut dyn FnMut() -> Result<Token, Problem>,
    ) -> Result<Token, Problem> {
        let Some(store) = self.store else {
            return fetch();
        };
        let now = self.clock.unix();
        let stored = Stored::read(store, key);
        if let Some(entry) = &stored.entry {
            if let Some(token) = entry.token().filter(|t| t.usable(now)) {
                if token.fresh(now) || entry.lease_active(now) {
                    return Ok(token);
                }
                return Ok(self.refresh(store, key, stored.raw.as_deref(), entry, token, fetch));
            }
        }
        self.cold(store, key, stored, fetch)
    }

    /// Marks `key` as holding no token, after a service refused it.
    pub(crate) fn forget(&self, key: &str) {
        if let Some(store) = self.store {
            store.set(key, &Entry::default().encode());
        }
    }

    /// The token still works but is due: whoever takes the lease refreshes, everyone else
    /// serves the old token.
    fn refresh(
        &self,
        store: &dyn Store,
        key: &str,
        raw: Option<&[u8]>,
        entry: &Entry,
        old: Token,
        fetch: &mut dyn FnMut() -> Result<Token, Problem>,
    ) -> Token {
        let now = self.clock.unix();
        let Some(raw) = raw else { return old };
        let leased = entry.leased(self.owner, now + self.lease_secs).encode();
        if store.swap(key, raw, &leased) == Swap::Lost {
            return old;
        }
        match fetch() {
            Ok(token) => {
                store.set(key, &Entry::holding(&token).encode());
                token
            }
            Err(_) => {
                // Keep the old token and let nobody try again for a while — unless our lease
                // ran out meanwhile and someone else has refreshed.
                let paused = entry.leased(self.owner, self.clock.unix() + REFRESH_PAUSE);
                store.swap(key, &leased, &paused.encode());
                old
            }
        }
    }

    /// No usable token: take the right to fetch, or wait for whoever has it. A waiter that
    /// gives up (the owner's entry vanished, or it waited `max_wait`) takes the lease itself
    /// before fetching, so a lost entry (evicted, or a write that failed) costs one fetch per
    /// takeover window rather than one per request, and its failure still reaches the others.
    fn cold(
        &self,
        store: &dyn Store,
        key: &str,
        mut stored: Stored,
        fetch: &mut dyn FnMut() -> Result<Token, Problem>,
    ) -> Result<Token, Problem> {
        let waited_from = self.clock.monotonic();
        let mut poll = FIRST_POLL;
        // Whether this is a takeover: the first look draws the period's ticket, later ones a
        // takeover window's.
        let mut gave_up = false;
        loop {
            if let Some(lease) = self.take_lease(store, key, &stored, gave_up) {
                return self.fetch_and_publish(store, key, Some(&lease), fetch);
            }
            if gave_up && self.clock.monotonic().saturating_sub(waited_from) >= self.max_wait * 2 {
                // Someone holds each lease we tried for, yet nothing arrives: the store is not
                // working. Fetch without coordination (bounded by the request's deadline).
                return self.fetch_and_publish(store, key, None, fetch);
            }
            let owner = stored
                .entry
                .as_ref()
                .map(|e| e.owner.clone())
                .unwrap_or_default();
            let round_from = self.clock.monotonic();
            let mut absent_since = stored.entry.is_none().then_some(round_from);
            // Wait for the owner's result.
            loop {
                let now_mono = self.clock.monotonic();
                let absent_too_long =
                    absent_since.is_some_and(|t| now_mono.saturating_sub(t) >= ABSENT_GRACE);
                if absent_too_long || now_mono.saturating_sub(round_from) >= self.max_wait {
                    gave_up = true;
                    break;
                }
                self.clock.sleep(poll);
                poll = (poll * 2).min(MAX_POLL);
                stored = Stored::read(store, key);
                let now = self.clock.unix();
                let Some(e) = &stored.entry else {
                    absent_since.get_or_insert(self.clock.monotonic());
                    continue;
                };
                absent_since = None;
                if let Some(token) = e.token().filter(|t| t.usable(now)) {
                    return Ok(token);
                }
                // The failure of the owner we waited on; or, when we began on a missing entry,
                // of whoever took it over since (it cannot be older than our wait).
                if let Some(failed) = e
                    .failed
                    .as_ref()
                    .filter(|_| !e.owner.is_empty() && (owner.is_empty() || e.owner == owner))
                {
                    return Err(restore(failed));
                }
                if !e.lease_active(now) || e.owner != owner {
                    break;
                }
            }
        }
    }

    /// Tries to take the right to fetch `key`; the lease as stored when we got it.
    fn take_lease(
        &self,
        store: &dyn Store,
        key: &str,
        stored: &Stored,
        takeover: bool,
    ) -> Option<Vec<u8>> {
        let now = self.clock.unix();
        match (&stored.raw, &stored.entry) {
            // Nothing there: an absent key cannot be compared and swapped (on SQLite that is an
            // upsert: everybody wins), so the right goes to whoever draws 1 from a counter: the
            // period's ticket, or for a takeover the window's. No atomics: everyone fetches.
            (None, _) | (Some(_), None) => {
                let counter = if takeover {
                    format!("{key}|takeover|{}", now / TAKEOVER_WINDOW)
                } else {
                    key_ticket(key, now)
                };
                match store.increment(&counter, 1) {
                    Some(1) | None => {
                        let leased = Entry::default()
                            .leased(self.owner, now + self.lease_secs)
                            .encode();
                        store.set(key, &leased);
                        Some(leased)
                    }
                    Some(_) => None,
                }
            }
            (Some(bytes), Some(e)) if !e.lease_active(now) => {
                let leased = e.leased(self.owner, now + self.lease_secs).encode();
                (store.swap(key, bytes, &leased) == Swap::Won).then_some(leased)
            }
            _ => None,
        }
    }

    /// Fetches and stores the token. A failure is published to the waiters of `lease` (the
    /// lease we hold, as stored) only while the entry still carries it: a fetcher that hung
    /// past its lease must not overwrite the token of whoever took over.
    fn fetch_and_publish(
        &self,
        store: &dyn Store,
        key: &str,
        lease: Option<&[u8]>,
        fetch: &mut dyn FnMut() -> Result<Token, Problem>,
    ) -> Result<Token, Problem> {
        match fetch() {
            Ok(token) => {
                store.set(key, &Entry::holding(&token).encode());
                Ok(token)
            }
            Err(problem) => {
                let failed = Entry {
                    owner: self.owner.to_string(),
                    failed: Some(StoredProblem {
                        status: problem.status.as_u16(),
                        code: problem.code.to_string(),
                        title: problem.title.to_string(),
                        detail: problem.detail.clone(),
                        retry_after: problem.retry_after,
                    }),
                    ..Entry::default()
                };
                if let Some(lease) = lease {
                    store.swap(key, lease, &failed.encode());
                }
                Err(problem)
            }
        }
    }
}

fn key_ticket(key: &str, now: u64) -> String {
    format!("{key}|ticket|{}", now / TICKET_PERIOD)
}

fn restore(p: &StoredProblem) -> Problem {
    let status = http::StatusCode::from_u16(p.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let mut problem = Problem::new(status, p.code.clone(), p.title.clone(), p.detail.clone());
    problem.retry_after = p.retry_after;
    problem
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::store::memory::MemStore;
    use crate::net::clock::fake::FakeClock;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    const NOW: u64 = 1_800_000_000;

    fn token(secret: &str, exp: u64, refresh: u64) -> Token {
        Token {
            secret: secret.into(),
            expires_on: exp,
            refresh_at: refresh,
        }
    }

    fn cache<'a>(store: &'a MemStore, clock: &'a FakeClock, owner: &'a str) -> Cache<'a> {
        cache_on(store, clock, owner)
    }

    fn cache_on<'a>(store: &'a dyn Store, clock: &'a FakeClock, owner: &'a str) -> Cache<'a> {
        Cache {
            store: Some(store),
            clock,
            owner,
            lease_secs: 10,
            max_wait: Duration::from_secs(12),
        }
    }

    #[test]
    fn warm_is_one_read_and_no_write() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        let c = cache(&store, &clock, "r1");
        let fetched = Cell::new(0);
        let mut fetch = || {
            fetched.set(fetched.get() + 1);
            Ok(token("t1", NOW + 3600, NOW + 3300))
        };
        assert_eq!(c.token("k", &mut fetch).unwrap().secret, "t1");
        store.reset_counts();
        assert_eq!(c.token("k", &mut fetch).unwrap().secret, "t1");
        assert_eq!(
            store.counts(),
            crate::identity::store::memory::Counts {
                reads: 1,
                writes: 0
            }
        );
        assert_eq!(fetched.get(), 1);
    }

    #[test]
    fn a_waiter_gets_the_owners_token_without_fetching() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        // Instance r1 has drawn ticket 1 and announced its lease, then is fetching.
        let r1 = cache(&store, &clock, "r1");
        let key = "k";
        store.increment(&key_ticket(key, NOW), 1);
        store.set(key, &Entry::default().leased("r1", NOW + 10).encode());
        // r1 publishes its token after 30 ms of r2's waiting.
        let s2 = store.clone();
        *clock.on_sleep.borrow_mut() = Some(Box::new(move |t| {
            if t >= Duration::from_millis(30)
                && s2
                    .raw(key)
                    .is_some_and(|v| !String::from_utf8_lossy(&v).contains("tok"))
            {
                s2.set(
                    key,
                    &Entry::holding(&token("tok-r1", NOW + 3600, NOW + 3300)).encode(),
                );
            }
        }));
        let _ = r1;
        let r2 = cache(&store, &clock, "r2");
        let got = r2
            .token(key, &mut || panic!("the waiter must not fetch"))
            .unwrap();
        assert_eq!(got.secret, "tok-r1");
        assert!(clock.monotonic() < Duration::from_millis(100));
    }

    #[test]
    fn the_first_of_a_cold_burst_fetches_and_the_rest_wait() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        let fetches = Cell::new(0);
        // r1 arrives first on an empty store: it draws ticket 1 and fetches.
        let r1 = cache(&store, &clock, "r1");
        let t = r1
            .token("k", &mut || {
                fetches.set(fetches.get() + 1);
                Ok(token("t", NOW + 3600, NOW + 3300))
            })
            .unwrap();
        assert_eq!((t.secret.as_str(), fetches.get()), ("t", 1));
        // Everyone after finds it.
        for owner in ["r2", "r3"] {
            let c = cache(&store, &clock, owner);
            assert_eq!(
                c.token("k", &mut || panic!("no second fetch"))
                    .unwrap()
                    .secret,
                "t"
            );
        }
    }

    #[test]
    fn an_expired_lease_is_taken_over_by_exactly_one() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        // A crashed owner left a lease that expires at NOW + 2.
        store.set("k", &Entry::default().leased("dead", NOW + 2).encode());
        let r2 = cache(&store, &clock, "r2");
        let fetched = Cell::new(false);
        let got = r2
            .token("k", &mut || {
                fetched.set(true);
                Ok(token("fresh", NOW + 3600, NOW + 3300))
            })
            .unwrap();
        assert!(fetched.get());
        assert_eq!(got.secret, "fresh");
        // It waited for the lease, not for its whole max_wait.
        let waited = clock.monotonic();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    /// A store in which each swap first lets one more contender act: every contender has read
    /// the entry before anyone's swap lands, as when a burst reaches a due token at once.
    struct Racing {
        inner: MemStore,
        others: RefCell<Vec<Box<dyn FnOnce()>>>,
    }

    impl Store for Racing {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.inner.set(key, value)
        }
        fn increment(&self, key: &str, delta: i64) -> Option<i64> {
            self.inner.increment(key, delta)
        }
        fn swap(&self, key: &str, expected: &[u8], value: &[u8]) -> Swap {
            let next = self.others.borrow_mut().pop();
            if let Some(contender) = next {
                contender();
            }
            self.inner.swap(key, expected, value)
        }
    }

    /// `contenders` requests that all read `seed` before any swap lands; how many fetched, and
    /// what each was served.
    fn race(contenders: usize, inner: MemStore, seed: Entry) -> (u32, Vec<String>) {
        inner.set("k", &seed.encode());
        let store = Rc::new(Racing {
            inner,
            others: RefCell::default(),
        });
        let clock = Rc::new(FakeClock::at(NOW));
        let fetches = Rc::new(Cell::new(0));
        let served = Rc::new(RefCell::new(Vec::new()));
        let run = {
            let (store, clock, fetches, served) = (
                store.clone(),
                clock.clone(),
                fetches.clone(),
                served.clone(),
            );
            move |i: usize| {
                let owner = format!("r{i}");
                let c = cache_on(&*store, &clock, &owner);
                let got = c.token("k", &mut || {
                    fetches.set(fetches.get() + 1);
                    Ok(token(&format!("new-{i}"), NOW + 3600, NOW + 3300))
                });
                served
                    .borrow_mut()
                    .push(got.map(|t| t.secret).unwrap_or_default());
            }
        };
        for i in 1..contenders {
            let run = run.clone();
            store.others.borrow_mut().push(Box::new(move || run(i)));
        }
        run(0);
        store.others.borrow_mut().clear();
        let served = served.borrow().clone();
        (fetches.get(), served)
    }

    #[test]
    fn contenders_for_a_due_token_refresh_it_once_on_both_stores() {
        // Due (past refresh_at) but usable: one refreshes, the rest serve the old token.
        let due = Entry::holding(&token("old", NOW + 1000, NOW - 1));
        for (name, store) in [
            ("sqlite", MemStore::default()),
            ("spin-redis", MemStore::spin_redis()),
        ] {
            let (fetches, served) = race(8, store, due_clone(&due));
            assert_eq!(fetches, 1, "{name}: {served:?}");
            assert_eq!(served.len(), 8, "{name}");
            assert_eq!(
                served.iter().filter(|s| *s == "old").count(),
                7,
                "{name}: {served:?}"
            );
        }
    }

    #[test]
    fn contenders_for_an_expired_lease_fetch_once_on_both_stores() {
        // No usable token and a dead owner's expired lease: exactly one swap wins; the others
        // wait for its result.
        let dead = Entry::default().leased("dead", NOW - 1);
        for (name, store) in [
            ("sqlite", MemStore::default()),
            ("spin-redis", MemStore::spin_redis()),
        ] {
            let (fetches, served) = race(8, store, due_clone(&dead));
            assert_eq!(fetches, 1, "{name}: {served:?}");
            assert_eq!(served.len(), 8, "{name}");
            assert!(
                served.iter().all(|s| s.starts_with("new-")),
                "{name}: {served:?}"
            );
        }
    }

    fn due_clone(e: &Entry) -> Entry {
        Entry::decode(&e.encode()).unwrap()
    }

    #[test]
    fn waiters_receive_the_owners_failure() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.set("k", &Entry::default().leased("r1", NOW + 10).encode());
        let s = store.clone();
        *clock.on_sleep.borrow_mut() = Some(Box::new(move |t| {
            if t >= Duration::from_millis(20) {
                let failed = Entry {
                    owner: "r1".into(),
                    failed: Some(StoredProblem {
                        status: 502,
                        code: "entra-app-not-in-tenant".into(),
                        title: "Upstream refused or failed".into(),
                        detail: "consent".into(),
                        retry_after: None,
                    }),
                    ..Entry::default()
                };
                s.set("k", &failed.encode());
            }
        }));
        let r2 = cache(&store, &clock, "r2");
        let p = r2.token("k", &mut || panic!("must not fetch")).unwrap_err();
        assert_eq!(
            (p.status.as_u16(), &*p.code),
            (502, "entra-app-not-in-tenant")
        );
        // A later request (not a waiter) tries again itself.
        let r3 = cache(&store, &clock, "r3");
        assert_eq!(
            r3.token("k", &mut || Ok(token("ok", NOW + 3600, NOW + 3300)))
                .unwrap()
                .secret,
            "ok"
        );
    }

    #[test]
    fn an_expiring_token_is_refreshed_once_while_others_serve_it() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.set(
            "k",
            &Entry::holding(&token("old", NOW + 1000, NOW - 1)).encode(),
        );
        // r1 takes the lease and, while it fetches, r2 is served the old token.
        let r1 = cache(&store, &clock, "r1");
        let r2_store = store.clone();
        let got = r1
            .token("k", &mut || {
                let r2clock = FakeClock::at(NOW);
                let r2 = cache(&r2_store, &r2clock, "r2");
                let during = r2
                    .token("k", &mut || panic!("r2 must not refresh"))
                    .unwrap();
                assert_eq!(during.secret, "old");
                Ok(token("new", NOW + 3600, NOW + 3300))
            })
            .unwrap();
        assert_eq!(got.secret, "new");
        let r3 = cache(&store, &clock, "r3");
        assert_eq!(r3.token("k", &mut || panic!()).unwrap().secret, "new");
    }

    #[test]
    fn a_failed_refresh_keeps_the_old_token_and_pauses() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.set(
            "k",
            &Entry::holding(&token("old", NOW + 1000, NOW - 1)).encode(),
        );
        let c = cache(&store, &clock, "r1");
        let down = || Err(Problem::upstream("x", "down"));
        assert_eq!(c.token("k", &mut down.clone()).unwrap().secret, "old");
        // Within the pause nobody refreshes.
        let c2 = cache(&store, &clock, "r2");
        assert_eq!(
            c2.token("k", &mut || panic!("paused")).unwrap().secret,
            "old"
        );
        clock.advance(Duration::from_secs(REFRESH_PAUSE - 1));
        assert_eq!(
            c2.token("k", &mut || panic!("still paused"))
                .unwrap()
                .secret,
            "old"
        );
        // Once the pause is over, the next request refreshes.
        clock.advance(Duration::from_secs(2));
        let c3 = cache(&store, &clock, "r3");
        assert_eq!(
            c3.token("k", &mut || Ok(token("new", NOW + 3600, NOW + 3300)))
                .unwrap()
                .secret,
            "new"
        );
    }

    #[test]
    fn no_usable_token_and_a_failure_shows() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.set(
            "k",
            &Entry::holding(&token("old", NOW + 100, NOW - 1)).encode(),
        );
        let c = cache(&store, &clock, "r1");
        assert!(c
            .token("k", &mut || Err(Problem::upstream("x", "down")))
            .is_err());
    }

    #[test]
    fn forget_leaves_an_entry_that_can_be_locked() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        let c = cache(&store, &clock, "r1");
        c.token("k", &mut || Ok(token("t", NOW + 3600, NOW + 3300)))
            .unwrap();
        c.forget("k");
        assert!(store.raw("k").is_some());
        let got = c
            .token("k", &mut || Ok(token("t2", NOW + 3600, NOW + 3300)))
            .unwrap();
        assert_eq!(got.secret, "t2");
    }

    #[test]
    fn an_entry_lost_after_its_ticket_is_recreated_by_one_waiter_for_all() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        // The ticket of this period is gone, but the entry vanished (eviction, a failed write).
        store.increment(&key_ticket("k", NOW), 1);
        let fetches = Cell::new(0);
        let c = cache(&store, &clock, "r1");
        let got = c
            .token("k", &mut || {
                fetches.set(fetches.get() + 1);
                Ok(token("r1", NOW + 3600, NOW + 3300))
            })
            .unwrap();
        assert_eq!((got.secret.as_str(), fetches.get()), ("r1", 1));
        // Noticed within the grace, not after the whole wait (12 s).
        assert!(
            clock.monotonic() < Duration::from_secs(2),
            "{:?}",
            clock.monotonic()
        );
        // Everyone after is served the token it published.
        let r2 = cache(&store, &clock, "r2");
        assert_eq!(
            r2.token("k", &mut || panic!("fetched")).unwrap().secret,
            "r1"
        );
    }

    /// Two waiters (r2, r3) on a ticket whose entry never appeared; r3 runs inside r2's first
    /// waits (another instance acting meanwhile). Each fetch answers `answer`. Returns the
    /// number of fetches and what each got.
    fn two_waiters_on_a_lost_entry(
        answer: Result<&'static str, &'static str>,
    ) -> (u32, Result<String, String>, Result<String, String>) {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.increment(&key_ticket("k", NOW), 1);
        let fetches = Rc::new(Cell::new(0));
        let fetch = move |f: &Rc<Cell<u32>>| {
            f.set(f.get() + 1);
            answer
                .map(|t| token(t, NOW + 3600, NOW + 3300))
                .map_err(|code| Problem::upstream(code, "refused".to_string()))
        };
        let (s3, f3) = (store.clone(), fetches.clone());
        let r3_result: Rc<RefCell<Option<Result<String, String>>>> = Rc::default();
        let out3 = r3_result.clone();
        *clock.on_sleep.borrow_mut() = Some(Box::new(move |t| {
            if out3.borrow().is_none() && t >= Duration::from_millis(100) {
                let clock3 = FakeClock::at(NOW);
                clock3.now.set(t);
                let r3 = cache(&s3, &clock3, "r3");
                let got = r3.token("k", &mut || fetch(&f3));
                *out3.borrow_mut() = Some(got.map(|t| t.secret).map_err(|p| p.code.to_string()));
            }
        }));
        let r2 = cache(&store, &clock, "r2");
        let got = r2
            .token("k", &mut || fetch(&fetches))
            .map(|t| t.secret)
            .map_err(|p| p.code.to_string());
        let r3 = r3_result.borrow_mut().take().expect("r3 ran");
        (fetches.get(), got, r3)
    }

    #[test]
    fn waiters_of_a_lost_entry_draw_one_takeover_between_them() {
        let (fetches, r2, r3) = two_waiters_on_a_lost_entry(Ok("tok"));
        assert_eq!(fetches, 1, "one fetch between the two waiters");
        assert_eq!((r2, r3), (Ok("tok".into()), Ok("tok".into())));
    }

    #[test]
    fn a_takeover_that_fails_publishes_its_failure_to_the_other_waiters() {
        let (fetches, r2, r3) = two_waiters_on_a_lost_entry(Err("entra-refused"));
        assert_eq!(
            fetches, 1,
            "a failing upstream is asked once, not once per waiter"
        );
        assert_eq!(
            (r2, r3),
            (Err("entra-refused".into()), Err("entra-refused".into()))
        );
    }

    #[test]
    fn a_fetcher_that_outlived_its_lease_leaves_the_new_token_alone() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        let r1 = cache(&store, &clock, "r1");
        let err = r1.token("k", &mut || {
            // r1 hangs past its lease; r2 takes over and publishes.
            clock.advance(Duration::from_secs(11));
            let r2 = cache(&store, &clock, "r2");
            let t = r2.token("k", &mut || Ok(token("r2", NOW + 3600, NOW + 3300)));
            assert_eq!(t.unwrap().secret, "r2");
            Err(Problem::timeout("r1 gave up"))
        });
        assert!(err.is_err());
        let r3 = cache(&store, &clock, "r3");
        assert_eq!(
            r3.token("k", &mut || panic!("r2's token is cached"))
                .unwrap()
                .secret,
            "r2"
        );
    }

    #[test]
    fn a_refresher_that_outlived_its_lease_leaves_the_new_token_alone() {
        let store = MemStore::default();
        let clock = FakeClock::at(NOW);
        store.set(
            "k",
            &Entry::holding(&token("old", NOW + 3000, NOW - 1)).encode(),
        );
        let r1 = cache(&store, &clock, "r1");
        let got = r1.token("k", &mut || {
            clock.advance(Duration::from_secs(11));
            let r2 = cache(&store, &clock, "r2");
            let t = r2.token("k", &mut || Ok(token("new", NOW + 3600, NOW + 3300)));
            assert_eq!(t.unwrap().secret, "new");
            Err(Problem::timeout("r1 gave up"))
        });
        assert_eq!(got.unwrap().secret, "old");
        let r3 = cache(&store, &clock, "r3");
        assert_eq!(r3.token("k", &mut || panic!()).unwrap().secret, "new");
    }

    #[test]
    fn without_a_store_every_request_fetches() {
        let clock = FakeClock::at(NOW);
        let c = Cache {
            store: None,
            clock: &clock,
            owner: "r",
            lease_secs: 10,
            max_wait: Duration::from_secs(1),
        };
        let fetches = Cell::new(0);
        for _ in 0..3 {
            let got = c.token("k", &mut || {
                fetches.set(fetches.get() + 1);
                Ok(token("t", NOW + 3600, NOW + 3300))
            });
            assert_eq!(got.unwrap().secret, "t");
        }
        assert_eq!(fetches.get(), 3, "nothing to share a token through");
    }

    #[test]
    fn entries_keep_their_json_shape() {
        // Replicas of two versions share one store during a rollout: the shape is a contract.
        let e = Entry {
            token: Some("t\"x".into()),
            expires_on: 5,
            refresh_at: 4,
            lease: 3,
            owner: "o".into(),
            failed: Some(StoredProblem {
                status: 502,
                code: "c".into(),
                title: "t".into(),
                detail: "d".into(),
                retry_after: Some(7),
            }),
        };
        let bytes = e.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"token":"t\"x","expires_on":5,"refresh_at":4,"lease":3,"owner":"o","failed":{"status":502,"code":"c","title":"t","detail":"d","retry_after":7}}"#
        );
        assert_eq!(Entry::decode(&bytes), Some(e));
        assert_eq!(
            Entry::default().encode(),
            br#"{"expires_on":0,"refresh_at":0,"lease":0}"#
        );
        assert_eq!(
            Entry::decode(br#"{"lease":9,"token":null,"failed":null,"other":[1]}"#),
            Some(Entry {
                lease: 9,
                ..Entry::default()
            })
        );
        assert_eq!(
            Entry::decode(br#"{"expires_on":null,"owner":null,"failed":{"status":502,"code":"c","title":"t","detail":"d","retry_after":null}}"#),
            Some(Entry {
                failed: Some(StoredProblem {
                    status: 502,
                    code: "c".into(),
                    title: "t".into(),
                    detail: "d".into(),
                    retry_after: None,
                }),
                ..Entry::default()
            })
        );
        for bad in [
            &b"not json"[..],
            br#"{"lease":"9"}"#,
            br#"{"lease":1,"lease":2}"#,
            br#"[null,5]"#,
            br#"{"failed":[502,"c","t","d"]}"#,
            br#"{"failed":{"status":70000,"code":"c","title":"t","detail":"d"}}"#,
            br#"{"failed":{"status":502,"code":"c","title":"t"}}"#,
            br#"{"token":1}"#,
        ] {
            assert_eq!(Entry::decode(bad), None);
        }
    }

    #[test]
    fn keys_are_built_in_one_shape() {
        assert_eq!(
            key("mi", &["public", "cid", "res"]),
            "tb2|mi|public|cid|res"
        );
    }
}
