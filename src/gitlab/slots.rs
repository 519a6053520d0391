//! Places in flight under a limit that changes while requests wait.
//!
//! A FIFO semaphore whose permits follow the adaptive limit
//! ([`super::pace`]): a request waits its turn, and a returned place wakes
//! exactly one waiter (thousands of queued history reads are not all
//! woken to find one place). When the limit falls below what is in
//! flight, the places over it are taken away as they are returned.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The places, `limit` of them.
pub struct Slots {
    semaphore: Semaphore,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The limit the permits stand for.
    limit: usize,
    /// Places held now that are over the limit: they go when returned.
    over: usize,
}

/// One place in flight; given back (or taken away) when dropped.
pub struct Slot<'a> {
    slots: &'a Slots,
    permit: Option<SemaphorePermit<'a>>,
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Slots {
            semaphore: Semaphore::new(limit),
            state: Mutex::new(State { limit, over: 0 }),
        }
    }

    /// Waits for a place, in turn.
    pub async fn take(&self) -> Slot<'_> {
        let permit = self
            .semaphore
            .acquire()
            .await
            .expect("the semaphore is never closed");
        Slot {
            slots: self,
            permit: Some(permit),
        }
    }

    /// Follows a new limit: more places at once, or fewer as they return.
    pub fn resize(&self, limit: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if limit > state.limit {
            let more = limit - state.limit;
            let kept = more.min(state.over);
            state.over -= kept;
            self.semaphore.add_permits(more - kept);
        } else if limit < state.limit {
            let fewer = state.limit - limit;
            let taken_now = self.semaphore.forget_permits(fewer);
            state.over += fewer - taken_now;
        }
        state.limit = limit;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut state = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.over > 0 {
            state.over -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn places_follow_the_limit_up_at_once_and_down_as_they_return() {
        let slots = Slots::new(2);
        let first = slots.take().await;
        let second = slots.take().await;
        assert!(slots.take().now_or_never().is_none(), "two at most");

        slots.resize(1);
        drop(first);
        assert!(
            slots.take().now_or_never().is_none(),
            "the returned place was over the new limit"
        );
        drop(second);
        let only = slots
            .take()
            .now_or_never()
            .expect("one place under the limit");
        assert!(slots.take().now_or_never().is_none());

        slots.resize(3);
        let more = [slots.take().now_or_never(), slots.take().now_or_never()];
        assert!(more.iter().all(Option::is_some), "two more at once");
        assert!(slots.take().now_or_never().is_none(), "three at most");
        drop(only);
    }

    #[tokio::test]
    async fn a_limit_raised_before_places_return_cancels_what_was_over() {
        let slots = Slots::new(4);
        let held: Vec<_> = [(); 4]
            .iter()
            .map(|_| slots.take().now_or_never().unwrap())
            .collect();
        slots.resize(2);
        slots.resize(3);
        drop(held);
        let now: Vec<_> = (0..4).map(|_| slots.take().now_or_never()).collect();
        assert_eq!(now.iter().filter(|s| s.is_some()).count(), 3);
    }
}
