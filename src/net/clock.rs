//! Time: the wall clock for token lifetimes, a monotonic clock and sleep for waits, and the
//! request's deadline. Behind a trait so host tests can move time and play other instances.

use crate::errors::Problem;
use std::time::Duration;

pub(crate) trait Clock {
    /// Unix seconds.
    fn unix(&self) -> u64;
    /// Time since the request started.
    fn monotonic(&self) -> Duration;
    fn sleep(&self, duration: Duration);
}

/// The request's time budget: when it runs out the caller gets a 504; retries and waits stop
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// On the [`Clock::monotonic`] scale.
    pub deadline: Duration,
    /// `request_deadline_secs`, for the 504's detail.
    pub limit_secs: u64,
    /// `retry_base_ms`: the first backoff wait.
    pub base: Duration,
}

impl Budget {
    /// Counted from the request's start (the clocks' monotonic zero), without reading a clock.
    pub(crate) fn new(limit_secs: u64, base_ms: u64) -> Budget {
        Budget {
            deadline: Duration::from_secs(limit_secs),
            limit_secs,
            base: Duration::from_millis(base_ms),
        }
    }

    pub(crate) fn remaining(&self, clock: &dyn Clock) -> Duration {
        self.deadline.saturating_sub(clock.monotonic())
    }

    pub(crate) fn exhausted(&self, what: &str) -> Problem {
        Problem::timeout(format!(
            "the request deadline (request_deadline_secs = {}) ran out while waiting for {what}",
            self.limit_secs
        ))
    }
}

// Not test-only: the fuzz door (fuzzing.rs) runs the relay with it too.
pub(crate) mod fake {
    //! A clock that only moves when slept on, with a hook that runs at every sleep (another
    //! "instance" acting meanwhile).

    use super::Clock;
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    pub(crate) type SleepHook = Box<dyn FnMut(Duration)>;

    #[derive(Default)]
    pub(crate) struct FakeClock {
        pub now: Cell<Duration>,
        pub unix_base: u64,
        pub on_sleep: RefCell<Option<SleepHook>>,
    }

    impl FakeClock {
        pub(crate) fn at(unix: u64) -> FakeClock {
            FakeClock {
                unix_base: unix,
                ..FakeClock::default()
            }
        }
        pub(crate) fn advance(&self, d: Duration) {
            self.now.set(self.now.get() + d);
        }
    }

    impl Clock for FakeClock {
        fn unix(&self) -> u64 {
            self.unix_base + self.now.get().as_secs()
        }
        fn monotonic(&self) -> Duration {
            self.now.get()
        }
        fn sleep(&self, d: Duration) {
            self.advance(d);
            if let Some(hook) = self.on_sleep.borrow_mut().as_mut() {
                hook(self.now.get());
            }
        }
    }
}
