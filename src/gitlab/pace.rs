//! How many GitLab requests to keep in flight, adapted to what GitLab
//! answers: additive increase, multiplicative decrease. The limit starts
//! low and doubles each round trip while latency stays near the fastest
//! seen (slow start), then grows by one a round trip; it halves on a 429,
//! and shrinks by a fifth when latency rises (GitLab queueing our
//! requests) or the announced budget runs low, once a round trip: the
//! answers to requests sent under the old limit say nothing of the new
//! one, so a burst of slow answers is one step down, not a collapse.
//! Latency is smoothed (as TCP smooths round trips, an eighth of each new
//! answer) and compared with the fastest seen of the same kind of request
//! ([`request_kind`]): one slow answer is not a trend, and a listing page
//! of 100 issues is slower than one issue's events without anything
//! queueing.
//! `--concurrency` is the ceiling. Pure: the client feeds it each answer.
//!
//! Concurrency alone cannot keep a per-minute budget, so [`Budget`] also
//! says how far apart request starts must be to spread what is left of
//! an announced budget (`RateLimit-Remaining` until `RateLimit-Reset`)
//! over the time left: a server that announces its limit is never run
//! into.

use std::collections::HashMap;
use std::time::Duration;

/// The limit a client starts with (or its ceiling, if lower).
const START: f64 = 4.0;
/// Latency over this multiple of the fastest seen counts as rising.
const RISING: f64 = 2.0;
/// Each answer moves the smoothed latency by this fraction of the way.
const SMOOTHING: f64 = 8.0;
/// Latencies this close to the fastest never count as rising (timer
/// noise on fast local servers).
const NOISE: Duration = Duration::from_millis(5);
/// Below this share of its budget left, a server is not pushed harder.
const LOW_BUDGET: f64 = 0.2;

/// What GitLab announced of its rate limit with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// `RateLimit-Limit`: requests per window.
    pub limit: u64,
    /// `RateLimit-Remaining`.
    pub remaining: u64,
    /// Time until `RateLimit-Reset`.
    pub resets_in: Duration,
}

impl Budget {
    /// How far apart request starts must be so that `remaining`, less
    /// the requests already in flight, lasts until the reset; `None` when
    /// the budget is no constraint.
    pub fn spacing(&self, in_flight: usize) -> Option<Duration> {
        let usable = self.remaining.saturating_sub(in_flight as u64);
        if usable == 0 {
            return Some(self.resets_in);
        }
        let spacing = self.resets_in / u32::try_from(usable).unwrap_or(u32::MAX);
        (spacing > Duration::from_millis(1)).then_some(spacing)
    }

    fn low(&self) -> bool {
        self.limit > 0 && (self.remaining as f64) < self.limit as f64 * LOW_BUDGET
    }
}

/// How one request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An answer in this time (any status but 429 and 5xx).
    Ok(Duration),
    /// 429 Too Many Requests.
    RateLimited,
    /// 5xx or no answer: GitLab may be overloaded.
    Failed,
}

/// The adaptive limit on requests in flight.
#[derive(Debug, Clone)]
pub struct Pace {
    ceiling: f64,
    limit: f64,
    slow_start: bool,
    /// The latency of each kind of request.
    latencies: HashMap<String, Latency>,
    /// Answers still to come from requests sent before the last step
    /// down; they neither grow nor shrink the limit.
    settling: usize,
}

impl Pace {
    pub fn new(ceiling: usize) -> Pace {
        let ceiling = ceiling.max(1) as f64;
        Pace {
            ceiling,
            limit: START.min(ceiling),
            slow_start: true,
            latencies: HashMap::new(),
            settling: 0,
        }
    }

    /// Requests that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit.floor().max(1.0) as usize
    }

    /// Adjusts the limit to one answer to a request of `kind` (see
    /// [`request_kind`]) and what it announced.
    pub fn observe(&mut self, kind: &str, answer: Answer, budget: Option<Budget>) {
        match answer {
            Answer::RateLimited => self.decrease(0.5),
            Answer::Failed => self.decrease(0.8),
            Answer::Ok(latency) => {
                let rising = match self.latencies.get_mut(kind) {
                    Some(seen) => seen.observe(latency),
                    None => {
                        self.latencies
                            .insert(kind.to_owned(), Latency::first(latency));
                        false
                    }
                };
                if self.settling > 0 {
                    self.settling -= 1;
                } else if rising || budget.is_some_and(|b| b.low()) {
                    self.settling = self.limit().saturating_sub(1);
                    self.decrease(0.8);
                } else if self.slow_start {
                    // One more per answer: doubles each round trip.
                    self.limit = (self.limit + 1.0).min(self.ceiling);
                } else {
                    // One more per round trip.
                    self.limit = (self.limit + 1.0 / self.limit).min(self.ceiling);
                }
            }
        }
    }

    fn decrease(&mut self, factor: f64) {
        self.slow_start = false;
        self.limit = (self.limit * factor).max(1.0);
    }
}

/// What was seen of one kind of request's latency.
#[derive(Debug, Clone, Copy)]
struct Latency {
    fastest: f64,
    smoothed: f64,
}

impl Latency {
    fn first(latency: Duration) -> Self {
        let seconds = latency.as_secs_f64();
        Latency {
            fastest: seconds,
            smoothed: seconds,
        }
    }

    /// Takes one more answer in; says whether latency is rising.
    fn observe(&mut self, latency: Duration) -> bool {
        let seconds = latency.as_secs_f64();
        self.fastest = self.fastest.min(seconds);
        self.smoothed += (seconds - self.smoothed) / SMOOTHING;
        let noise = NOISE.as_secs_f64();
        self.smoothed > noise && self.smoothed > self.fastest * RISING + noise
    }
}

/// The kind of request a REST path is, for comparing latencies: the
/// API's paths alternate a collection and an item of it, so the items are
/// left out (`projects/*/issues/*/resource_label_events`).
pub fn request_kind(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.split("/api/v4/").nth(1).unwrap_or(path);
    path.trim_matches('/')
        .split('/')
        .enumerate()
        .map(|(at, segment)| if at % 2 == 1 { "*" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(20);
    const EVENTS: &str = "projects/*/issues/*/resource_label_events";

    #[test]
    fn it_starts_low_and_grows_to_the_ceiling_while_latency_stays_flat() {
        let mut pace = Pace::new(32);
        assert_eq!(pace.limit(), 4);
        for _ in 0..30 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 32, "flat latency: up to the ceiling");
        pace.observe(EVENTS, Answer::Ok(RTT), None);
        assert_eq!(pace.limit(), 32, "never past it");
    }

    #[test]
    fn a_429_halves_it_and_growth_is_slow_after() {
        let mut pace = Pace::new(32);
        for _ in 0..12 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 16);
        pace.observe(EVENTS, Answer::RateLimited, None);
        assert_eq!(pace.limit(), 8);
        for _ in 0..8 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 8, "one round trip of answers adds about one");
        for _ in 0..10 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 10);
    }

    #[test]
    fn rising_latency_and_a_low_budget_back_off() {
        let mut pace = Pace::new(32);
        for _ in 0..8 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 12);
        pace.observe(EVENTS, Answer::Ok(RTT * 3), None);
        assert_eq!(pace.limit(), 13, "one slow answer is not a trend");
        for _ in 0..6 {
            pace.observe(EVENTS, Answer::Ok(RTT * 3), None);
        }
        assert_eq!(pace.limit(), 19);
        pace.observe(EVENTS, Answer::Ok(RTT * 3), None);
        assert_eq!(pace.limit(), 15, "eight in a row: queueing, a fifth less");
        for _ in 0..18 {
            pace.observe(EVENTS, Answer::Ok(RTT * 3), None);
        }
        assert_eq!(
            pace.limit(),
            15,
            "the other 18 answers sent under the old limit change nothing"
        );
        let low = Budget {
            limit: 2_000,
            remaining: 100,
            resets_in: Duration::from_secs(30),
        };
        pace.observe(EVENTS, Answer::Ok(RTT), Some(low));
        assert_eq!(pace.limit(), 12, "the next round trip steps down again");
        for _ in 0..50 {
            pace.observe(EVENTS, Answer::Failed, None);
        }
        assert_eq!(pace.limit(), 1, "never below one");
    }

    #[test]
    fn a_slower_kind_of_request_is_not_rising_latency() {
        let mut pace = Pace::new(32);
        for _ in 0..4 {
            pace.observe(EVENTS, Answer::Ok(RTT), None);
        }
        assert_eq!(pace.limit(), 8);
        // A listing page of 100 issues takes longer from the start.
        pace.observe("projects/*/issues", Answer::Ok(RTT * 4), None);
        pace.observe("projects/*/issues", Answer::Ok(RTT * 4), None);
        assert_eq!(pace.limit(), 10, "still growing");
        // Events answers three times slower than before: queueing. The
        // eighth in a row tips the smoothed latency over.
        for _ in 0..8 {
            pace.observe(EVENTS, Answer::Ok(RTT * 3), None);
        }
        assert_eq!(pace.limit(), 13, "17, less a fifth");
    }

    #[test]
    fn a_request_kind_leaves_the_items_out() {
        assert_eq!(
            request_kind("/api/v4/projects/acme%2Fbackend/issues/12/resource_label_events?page=1"),
            "projects/*/issues/*/resource_label_events"
        );
        assert_eq!(
            request_kind("/api/v4/groups/acme/issues?state=opened&page=3"),
            "groups/*/issues"
        );
        assert_eq!(request_kind("/api/v4/projects/7"), "projects/*");
    }

    #[test]
    fn what_is_left_of_a_budget_is_spread_until_it_resets() {
        let budget = Budget {
            limit: 2_000,
            remaining: 100,
            resets_in: Duration::from_secs(30),
        };
        assert_eq!(budget.spacing(0), Some(Duration::from_millis(300)));
        assert_eq!(budget.spacing(50), Some(Duration::from_millis(600)));
        let spent = Budget {
            remaining: 3,
            ..budget
        };
        assert_eq!(
            spent.spacing(4),
            Some(Duration::from_secs(30)),
            "wait for the reset"
        );
        let plenty = Budget {
            remaining: 1_990,
            resets_in: Duration::from_secs(1),
            ..budget
        };
        assert_eq!(plenty.spacing(8), None, "no constraint");
    }
}
