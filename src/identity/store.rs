//! The key-value store as the token cache sees it: Spin's `wasi:keyvalue@0.2.0-draft2` bucket
//! with its atomics (implemented in `platform`), and an in-memory stand-in for host tests that
//! behaves like either of Spin's backends.
//!
//! Failures are swallowed by implementations: a broken cache costs round trips, never the
//! request.

/// Outcome of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swap {
    /// The value was still `expected` and is now the new one.
    Won,
    /// Someone changed it first (or the store could not tell): take no action.
    Lost,
}

pub(crate) trait Store {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn set(&self, key: &str, value: &[u8]);
    /// Atomically adds `delta` and returns the new value (an absent key counts as 0); `None`
    /// when the store has no atomics.
    fn increment(&self, key: &str, delta: i64) -> Option<i64>;
    /// Replaces the value with `value` only if it is still exactly `expected` (which must be a
    /// value read from an existing key: on Spin's SQLite store a swap from an absent key is an
    /// unconditional upsert, so it proves nothing).
    fn swap(&self, key: &str, expected: &[u8], value: &[u8]) -> Swap;
}

/// What a store's compare-and-swap reported (`wasi:keyvalue/atomics` `swap`).
#[derive(Debug, Clone, PartialEq, Eq)]
// Used by the Spin edge (wasm32 only) and the in-memory store of host tests.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) enum CasReport {
    Swapped,
    /// `cas-failed`, with the key as the returned handle reads it afterwards.
    Failed {
        now: Option<Vec<u8>>,
    },
    StoreError,
}

/// Whether our swap to `value` won, from what the store reported. Spin 3.6.3's Redis store
/// reports every swap as failed (it ends the transaction with `UNWATCH key`, which Redis
/// refuses), though an unconflicted swap was written: the key read back holding our value means
/// we won. Our values carry the request's id, so nobody else can have written the same bytes.
#[cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]
pub(crate) fn swap_outcome(value: &[u8], report: CasReport) -> Swap {
    match report {
        CasReport::Swapped => Swap::Won,
        CasReport::Failed { now } if now.as_deref() == Some(value) => Swap::Won,
        CasReport::Failed { .. } | CasReport::StoreError => Swap::Lost,
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! A shared in-memory store with operation counters, for host tests.

    use super::{swap_outcome, CasReport, Store, Swap};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Counts {
        pub reads: u32,
        pub writes: u32,
    }

    #[derive(Default, Clone)]
    pub(crate) struct MemStore {
        data: Rc<RefCell<HashMap<String, Vec<u8>>>>,
        counts: Rc<RefCell<Counts>>,
        /// Report swaps as Spin 3.6.3's Redis store does: every one `cas-failed`, applied or not.
        spin_redis: bool,
    }

    impl MemStore {
        /// A store whose swaps report as Spin 3.6.3's Redis store's do.
        pub(crate) fn spin_redis() -> MemStore {
            MemStore {
                spin_redis: true,
                ..MemStore::default()
            }
        }
        pub(crate) fn counts(&self) -> Counts {
            *self.counts.borrow()
        }
        pub(crate) fn reset_counts(&self) {
            *self.counts.borrow_mut() = Counts::default();
        }
        pub(crate) fn raw(&self, key: &str) -> Option<Vec<u8>> {
            self.data.borrow().get(key).cloned()
        }
    }

    impl Store for MemStore {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.counts.borrow_mut().reads += 1;
            self.data.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.counts.borrow_mut().writes += 1;
            self.data.borrow_mut().insert(key.into(), value.to_vec());
        }
        fn increment(&self, key: &str, delta: i64) -> Option<i64> {
            self.counts.borrow_mut().writes += 1;
            let mut data = self.data.borrow_mut();
            let current = data
                .get(key)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                .unwrap_or(0);
            data.insert(key.into(), (current + delta).to_string().into_bytes());
            Some(current + delta)
        }
        fn swap(&self, key: &str, expected: &[u8], value: &[u8]) -> Swap {
            self.counts.borrow_mut().writes += 1;
            let mut data = self.data.borrow_mut();
            let swapped = match data.get(key) {
                Some(current) if current == expected => {
                    data.insert(key.into(), value.to_vec());
                    true
                }
                _ => false,
            };
            // Through the same decision as the Spin edge, so the read-back is what is tested.
            let report = if swapped && !self.spin_redis {
                CasReport::Swapped
            } else {
                CasReport::Failed {
                    now: data.get(key).cloned(),
                }
            };
            swap_outcome(value, report)
        }
    }
}
