//! The SLA clock: where one issue stands against one policy at one instant.
//!
//! [`read`] replays the issue's timeline from its creation to `now` and
//! returns a [`ClockReading`]: which cycle the clock is in, how much time has
//! counted against the target, how much was held (paused or closed), and the
//! phase now. [`ClockReading::status`] turns that into what people see.
//!
//! The rules, from DESIGN.md:
//! - A *cycle* begins when the issue starts to match the policy and ends when
//!   it stops matching. Matching again later begins a new cycle.
//! - Time counts only while the cycle runs: not while a pause label is on
//!   (up to `max_pause` per cycle), not while the issue is closed, not while
//!   the stop condition holds. Reopening, or losing the stop label, resumes.
//! - Events at one instant are applied together before anything is decided,
//!   so the order they were recorded in never matters.
//! - Age conditions (`created`, `updated`) hold in a window of instants:
//!   its edges are instants of the replay like events, so a clock starts
//!   when an issue becomes old enough, and a cycle ends when it is too old.
//!
//! Pure: the caller passes `now`.

mod status;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use smallvec::SmallVec;

use crate::issue::{Event, Issue};
use crate::policy::calendar::Calendar;
use crate::policy::{DuplicateRule, MatchWindow, Policy, Selector, StartRule, StopRule};
pub use status::{PauseReason, SlaStatus};

/// Where a clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The issue has never matched the policy.
    NotMatching,
    /// Time counts.
    Running,
    /// A pause label, or (for label-stopped policies) a closed issue, holds the clock.
    Paused(PauseReason),
    /// The stop condition holds: closed, or the target label is on.
    Stopped,
    /// The issue stopped matching while the clock was not stopped.
    Withdrawn,
}

/// A stretch of wall time during which the clock counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunSegment {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Counted time at `from`.
    active_at_from: TimeDelta,
    /// Time counted in it: all of it, or its working time on a calendar.
    counted: TimeDelta,
}

/// One policy's clock on one issue, as of `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    pub now: DateTime<Utc>,
    pub target: TimeDelta,
    /// 1 for the first time the issue matched, 2 after a withdrawal and a
    /// new match, ...; 0 if it never matched.
    pub cycle: u32,
    pub phase: Phase,
    /// When this cycle's clock started (meaningless for cycle 0).
    pub started_at: DateTime<Utc>,
    /// When the current phase began.
    pub phase_since: DateTime<Utc>,
    /// When this cycle first ran or was paused: the moment it became an
    /// open problem (later than `started_at` if it began already resolved).
    pub live_since: Option<DateTime<Utc>>,
    /// Time counted against the target in this cycle.
    pub active: TimeDelta,
    /// Time a pause label held the clock in this cycle (what `max_pause` caps).
    pub paused: TimeDelta,
    /// All time not counted since the start: pauses, closed time, stopped time.
    pub held: TimeDelta,
    /// How often the stop condition was reached in this cycle.
    pub resolutions: u32,
    /// The most a pause may bank, if the policy caps it.
    pub max_pause: Option<TimeDelta>,
    /// The calendar whose working time counts, if the policy has one;
    /// `active`, `remaining` and the thresholds are working time then.
    pub calendar: Option<Arc<Calendar>>,
    /// When the policy's age conditions next begin or stop to hold
    /// (`match: { created: { older_than: 2d } }`): whether the issue
    /// matches may change then with nothing happening to it.
    pub window_edge: Option<DateTime<Utc>>,
    segments: SmallVec<[RunSegment; 4]>,
}

impl ClockReading {
    /// The cycle is going: running or paused, not stopped, not withdrawn.
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Paused(_))
    }

    /// Counted time left before the deadline; negative once it has passed.
    pub fn remaining(&self) -> TimeDelta {
        self.target - self.active
    }

    /// True once the clock has counted `threshold`: past it, or exactly at it
    /// while running. A clock held at the very instant it got there has not
    /// reached it yet; it does the moment it runs again.
    pub fn reached(&self, threshold: TimeDelta) -> bool {
        self.active > threshold || (self.active == threshold && self.phase == Phase::Running)
    }

    /// The wall-clock instant at which the clock was running with `active`
    /// counted: exact for the past, projected for the future while the clock
    /// runs, `None` while it is held or the cycle is over. Past stretches are
    /// half-open: at their end the clock had stopped.
    pub fn instant_at(&self, active: TimeDelta) -> Option<DateTime<Utc>> {
        if active <= TimeDelta::zero() {
            return Some(self.started_at);
        }
        let running = self.phase == Phase::Running;
        for segment in &self.segments {
            let end = segment.active_at_from + segment.counted;
            if segment.active_at_from <= active && active < end {
                return self.counting_on(segment.from, active - segment.active_at_from);
            }
        }
        // Not inside a past stretch: it is now, or later, if the clock runs.
        if running && active >= self.active {
            self.counting_on(self.now, active - self.active)
        } else {
            None
        }
    }

    /// The instant `counted` more time has counted after `from` while
    /// running: wall time, or working time on the calendar.
    fn counting_on(&self, from: DateTime<Utc>, counted: TimeDelta) -> Option<DateTime<Utc>> {
        match &self.calendar {
            Some(calendar) => calendar.after_working(from, counted),
            None => Some(from + counted),
        }
    }

    /// Time that counts between `from` and `to` while running.
    fn counts_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> TimeDelta {
        match &self.calendar {
            Some(calendar) => calendar.working_between(from, to),
            None => to - from,
        }
    }

    /// The deadline: when counted time reaches the target. `None` while the
    /// clock is held before reaching it (the deadline moves with the hold).
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.instant_at(self.target)
    }

    /// When a pause label stops holding the clock because `max_pause` is spent.
    pub fn pause_runs_out_at(&self) -> Option<DateTime<Utc>> {
        match (self.phase, self.max_pause) {
            (Phase::Paused(PauseReason::Label(_)), Some(cap)) => {
                Some(self.now + (cap - self.paused))
            }
            _ => None,
        }
    }
}

/// Replays `issue`'s timeline under `policy` up to `now`.
pub fn read(issue: &Issue, policy: &Policy, now: DateTime<Utc>) -> ClockReading {
    let facts = issue.facts();
    let mut replay = Replay::new(policy, facts.created_at, now);
    replay.carried_start = issue.carried_start(&policy.name.0);
    if !policy.selector.matches_facts(facts) {
        return replay.reading;
    }
    let window = policy.selector.window(facts);
    if window.is_empty() {
        return replay.reading;
    }
    replay.window = window;
    // A rule's `unless`: its conditions on facts now, its window in time.
    let unless = policy
        .selector
        .unless
        .as_deref()
        .filter(|unless| unless.matches_facts(facts))
        .map(|unless| (unless, unless.window(facts)));
    replay.unless = unless;
    let unless_window = unless.map(|(_, window)| window).unwrap_or_default();
    // The instants at which the age conditions change, after creation
    // (none, for most policies: they ask nothing of age).
    let mut edges: SmallVec<[DateTime<Utc>; 4]> = SmallVec::new();
    if window != MatchWindow::default() || unless_window != MatchWindow::default() {
        replay.reading.window_edge = [
            window.next_edge_after(now),
            unless_window.next_edge_after(now),
        ]
        .into_iter()
        .flatten()
        .min();
        edges.extend(
            window
                .edges()
                .chain(unless_window.edges())
                .filter(|edge| *edge > facts.created_at && *edge <= now),
        );
        edges.sort();
        edges.dedup();
    }
    let mut next_edge = 0;

    let mut labels: SmallVec<[&str; 16]> =
        issue.initial_labels().iter().map(String::as_str).collect();
    let mut open = issue.initially_open();
    replay.settle(facts.created_at, &labels, open);

    // Closed as a duplicate, under a policy that follows duplicates: not a
    // resolution. The cycle ends there as withdrawn (the canonical issue's
    // clock goes on, see `Issue::with_carried_start`).
    let withdrawn_at = issue
        .duplicate_closed_at()
        .filter(|_| policy.clock.duplicates == DuplicateRule::Follow)
        .map(|at| at.max(facts.created_at))
        .filter(|at| *at <= now);
    let events = issue.timeline().events();
    let mut index = 0;
    while index < events.len() {
        // Events before creation happen (imports, clock skew): treat them as at creation.
        let at = events[index].at.max(facts.created_at);
        if at > now {
            break;
        }
        // An age condition that changed before these events, on its own.
        while let Some(&edge) = edges.get(next_edge).filter(|edge| **edge < at) {
            if let Some(withdrawn) = withdrawn_at.filter(|w| *w <= edge) {
                replay.advance(withdrawn);
                replay.withdraw(withdrawn);
                return replay.reading;
            }
            replay.advance(edge);
            replay.settle(edge, &labels, open);
            next_edge += 1;
        }
        if let Some(withdrawn) = withdrawn_at.filter(|w| *w <= at) {
            replay.advance(withdrawn);
            replay.withdraw(withdrawn);
            return replay.reading;
        }
        replay.advance(at);
        while index < events.len() && events[index].at.max(facts.created_at) == at {
            match &events[index].event {
                Event::LabelAdded(label) => {
                    if !labels.contains(&label.as_str()) {
                        labels.push(label);
                    }
                }
                Event::LabelRemoved(label) => labels.retain(|l| *l != label.as_str()),
                Event::Closed => open = false,
                Event::Reopened => open = true,
            }
            index += 1;
        }
        replay.settle(at, &labels, open);
        next_edge += edges[next_edge..]
            .iter()
            .take_while(|edge| **edge <= at)
            .count();
    }
    for &edge in &edges[next_edge..] {
        if withdrawn_at.is_some_and(|w| w <= edge) {
            break;
        }
        replay.advance(edge);
        replay.settle(edge, &labels, open);
    }
    if let Some(withdrawn) = withdrawn_at {
        replay.advance(withdrawn);
        replay.withdraw(withdrawn);
        return replay.reading;
    }
    replay.advance(now);
    replay.reading
}

/// The replay's moving parts: a reading being built, and the instant it is at.
struct Replay<'p> {
    policy: &'p Policy,
    created_at: DateTime<Utc>,
    at: DateTime<Utc>,
    reading: ClockReading,
    /// The cycle is open: it began and the issue has not stopped matching.
    cycle_open: bool,
    /// An earlier start for the first cycle, from a duplicate of the issue.
    carried_start: Option<DateTime<Utc>>,
    /// When the policy's age conditions hold.
    window: MatchWindow,
    /// A rule's `unless`, if its conditions on facts hold: it is checked
    /// at each instant like the policy's own.
    unless: Option<(&'p Selector, MatchWindow)>,
}

impl<'p> Replay<'p> {
    fn new(policy: &'p Policy, created_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Replay {
            policy,
            created_at,
            at: created_at,
            cycle_open: false,
            carried_start: None,
            window: MatchWindow::default(),
            unless: None,
            reading: ClockReading {
                now,
                target: policy.clock.target,
                cycle: 0,
                phase: Phase::NotMatching,
                started_at: created_at,
                phase_since: created_at,
                live_since: None,
                active: TimeDelta::zero(),
                paused: TimeDelta::zero(),
                held: TimeDelta::zero(),
                resolutions: 0,
                max_pause: policy.clock.max_pause,
                calendar: policy.clock.calendar.clone(),
                window_edge: None,
                segments: SmallVec::new(),
            },
        }
    }

    /// Lets time pass from the current instant to `to` in the current phase.
    fn advance(&mut self, to: DateTime<Utc>) {
        let elapsed = to - self.at;
        if elapsed <= TimeDelta::zero() {
            return;
        }
        let from = self.at;
        self.at = to;
        if !self.cycle_open {
            return;
        }
        let reading = &mut self.reading;
        match reading.phase {
            Phase::Running => self.count(from, to),
            Phase::Paused(PauseReason::Label(_)) => {
                let room = reading
                    .max_pause
                    .map_or(elapsed, |cap| (cap - reading.paused).max(TimeDelta::zero()));
                if elapsed <= room {
                    reading.paused += elapsed;
                    reading.held += elapsed;
                } else {
                    // The pause allowance ran out part-way: the clock runs from there.
                    reading.paused += room;
                    reading.held += room;
                    let resumed = from + room;
                    reading.phase = Phase::Running;
                    reading.phase_since = resumed;
                    self.count(resumed, to);
                }
            }
            Phase::Paused(PauseReason::Closed) | Phase::Stopped => reading.held += elapsed,
            Phase::NotMatching | Phase::Withdrawn => {}
        }
    }

    fn count(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let reading = &mut self.reading;
        let counted = reading.counts_between(from, to);
        reading.segments.push(RunSegment {
            from,
            to,
            active_at_from: reading.active,
            counted,
        });
        reading.active += counted;
    }

    /// The issue stops matching at `at` whatever its labels say.
    fn withdraw(&mut self, at: DateTime<Utc>) {
        if self.cycle_open {
            self.cycle_open = false;
            if self.reading.phase != Phase::Stopped {
                self.reading.phase = Phase::Withdrawn;
                self.reading.phase_since = at;
            }
        }
    }

    /// Decides the phase after everything that happened at `at`.
    fn settle(&mut self, at: DateTime<Utc>, labels: &[&str], open: bool) {
        let policy = self.policy;
        let matching = policy.selector.matches_labels(labels.iter().copied())
            && policy.selector.matches_state(open)
            && self.window.contains(at)
            && !self.unless.is_some_and(|(unless, window)| {
                unless.matches_labels(labels.iter().copied())
                    && unless.matches_state(open)
                    && window.contains(at)
            });
        let reading = &mut self.reading;

        if !self.cycle_open {
            if !matching {
                return;
            }
            self.cycle_open = true;
            reading.cycle += 1;
            reading.active = TimeDelta::zero();
            reading.paused = TimeDelta::zero();
            reading.held = TimeDelta::zero();
            reading.resolutions = 0;
            reading.live_since = None;
            reading.segments.clear();
            reading.started_at = at;
            reading.phase = Phase::Running;
            reading.phase_since = at;
            // Counted from creation, or from a duplicate's earlier start:
            // the time before matching ran against the target.
            let from_creation =
                (policy.clock.starts == StartRule::Created).then_some(self.created_at);
            let earliest = [from_creation, self.carried_start]
                .into_iter()
                .flatten()
                .min();
            if reading.cycle == 1
                && let Some(from) = earliest.filter(|from| *from < at)
            {
                reading.started_at = from;
                let counted = reading.counts_between(from, at);
                reading.segments.push(RunSegment {
                    from,
                    to: at,
                    active_at_from: TimeDelta::zero(),
                    counted,
                });
                reading.active = counted;
            }
        } else if !matching {
            self.cycle_open = false;
            if reading.phase != Phase::Stopped {
                reading.phase = Phase::Withdrawn;
                reading.phase_since = at;
            }
            return;
        }

        let stop_holds = match &policy.clock.stops {
            StopRule::Closed => !open,
            StopRule::Labeled(patterns) => patterns
                .iter()
                .any(|p| p.matches_any(labels.iter().copied())),
            StopRule::Never => false,
        };
        // A rule's grace runs whether the issue is open or closed.
        let open = open || policy.clock.stops == StopRule::Never;
        let pause_label = policy
            .clock
            .pauses_while_labeled
            .iter()
            .position(|p| p.matches_any(labels.iter().copied()));
        let pause_left = reading.max_pause.is_none_or(|cap| reading.paused < cap);

        let phase = if stop_holds {
            Phase::Stopped
        } else if !open {
            Phase::Paused(PauseReason::Closed)
        } else if let (Some(pattern), true) = (pause_label, pause_left) {
            Phase::Paused(PauseReason::Label(pattern))
        } else {
            Phase::Running
        };
        if phase != reading.phase {
            if phase == Phase::Stopped {
                reading.resolutions += 1;
            }
            reading.phase = phase;
            reading.phase_since = at;
        }
        if reading.live_since.is_none() && reading.is_live() {
            reading.live_since = Some(at);
        }
    }
}

#[cfg(test)]
mod conditions_tests;
#[cfg(test)]
mod tests;
