//! The escalation ledger kept on the issue itself, for `audit --notify`
//! (no database) and for the watchdog: every step labelwarden carries out
//! leaves a machine-readable marker, an HTML comment GitLab keeps in the
//! note's text but does not show:
//!
//! ```text
//! <!-- labelwarden:fired policy=critical-bug-24h step=breach cycle=1 occurrence=1 channel=alerts thread=C0ALERTS%3A1764000000.000100 -->
//! ```
//!
//! Values are URL-encoded, so any policy, step or channel name fits. A
//! step's visible comment (`gitlab: { comment: true }`) carries its marker;
//! every fired step is also listed in one internal "ledger" note per issue,
//! which labelwarden edits as steps fire, so a Slack-only reminder does not
//! add a comment of its own. Pure: building and reading text.

use crate::engine::Firing;
use crate::notice::Thread;
use crate::policy::{PolicyName, StepId};

const PREFIX: &str = "<!-- labelwarden:fired ";
const SUFFIX: &str = " -->";

/// The first line of the ledger note, by which it is found again.
pub const LEDGER_HEADING: &str =
    "**labelwarden** keeps the escalation ledger of this issue in this note (do not edit):";

/// One fired step, as a marker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub policy: PolicyName,
    pub firing: Firing,
    /// The Slack channel (its name in the policy files) the step posted to.
    pub channel: Option<String>,
    /// The Slack thread of the step's cycle in that channel.
    pub thread: Option<Thread>,
}

pub(super) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub(super) fn decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The fields of every HTML comment in `text` that begins with `prefix`
/// (`<!-- labelwarden:… `), up to its closing `-->`.
pub(super) fn comments<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        let after = &rest[start + prefix.len()..];
        let Some(end) = after.find(SUFFIX) else { break };
        found.push(&after[..end]);
        rest = &after[end + SUFFIX.len()..];
    }
    found
}

/// A Slack thread as a marker field: `C0ALERTS:1764000000.000100`, encoded.
pub(super) fn encode_thread(thread: &Thread) -> String {
    encode(&format!("{}:{}", thread.channel_id, thread.ts))
}

/// A decoded `thread` field back as a thread.
pub(super) fn decode_thread(value: &str) -> Option<Thread> {
    value.split_once(':').map(|(channel_id, ts)| Thread {
        channel_id: channel_id.to_owned(),
        ts: ts.to_owned(),
    })
}

impl Marker {
    /// The HTML comment.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{PREFIX}policy={} step={} cycle={} occurrence={}",
            encode(&self.policy.0),
            encode(&self.firing.step.0),
            self.firing.cycle,
            self.firing.occurrence
        );
        if let Some(channel) = &self.channel {
            text.push_str(&format!(" channel={}", encode(channel)));
        }
        if let Some(thread) = &self.thread {
            text.push_str(&format!(" thread={}", encode_thread(thread)));
        }
        text.push_str(SUFFIX);
        text
    }

    /// Every marker in a note's text; anything else is ignored.
    pub fn find_all(text: &str) -> Vec<Marker> {
        comments(text, PREFIX)
            .into_iter()
            .filter_map(Marker::parse)
            .collect()
    }

    fn parse(fields: &str) -> Option<Marker> {
        let (mut policy, mut step, mut cycle, mut occurrence) = (None, None, None, None);
        let (mut channel, mut thread) = (None, None);
        for field in fields.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            let value = decode(value);
            match key {
                "policy" => policy = Some(value),
                "step" => step = Some(value),
                "cycle" => cycle = value.parse().ok(),
                "occurrence" => occurrence = value.parse().ok(),
                "channel" => channel = Some(value),
                "thread" => thread = decode_thread(&value),
                _ => {}
            }
        }
        Some(Marker {
            policy: PolicyName(policy?),
            firing: Firing {
                step: StepId(step?),
                cycle: cycle?,
                occurrence: occurrence?,
            },
            channel,
            thread,
        })
    }
}

/// The ledger note's text with these markers, one per line.
pub fn ledger_note(markers: &[Marker]) -> String {
    let mut text = format!("{LEDGER_HEADING}\n");
    for marker in markers {
        text.push('\n');
        text.push_str(&marker.render());
    }
    text
}

/// The thread a cycle of a policy has in a channel, from its markers.
pub fn thread_of<'a>(
    markers: &'a [Marker],
    policy: &PolicyName,
    cycle: u32,
    channel: &str,
) -> Option<&'a Thread> {
    markers
        .iter()
        .rev()
        .filter(|m| {
            &m.policy == policy && m.firing.cycle == cycle && m.channel.as_deref() == Some(channel)
        })
        .find_map(|m| m.thread.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(step: &str, thread: Option<(&str, &str)>) -> Marker {
        Marker {
            policy: PolicyName("critical bug: 24h".into()),
            firing: Firing {
                step: StepId(step.into()),
                cycle: 2,
                occurrence: 1,
            },
            channel: Some("alerts".into()),
            thread: thread.map(|(c, ts)| Thread {
                channel_id: c.into(),
                ts: ts.into(),
            }),
        }
    }

    #[test]
    fn markers_survive_a_round_trip_through_a_note() {
        let start = marker("start", Some(("C0ALERTS", "1764000000.000100")));
        let warning = marker("before_deadline:6h", None);
        let note = format!(
            "SLA clock started.\n\n{}\nsomeone wrote <!-- a comment -->\n{}",
            start.render(),
            warning.render()
        );
        assert!(
            start
                .render()
                .starts_with("<!-- labelwarden:fired policy=critical+bug%3A+24h step=start")
        );
        assert_eq!(
            Marker::find_all(&note),
            vec![start.clone(), warning.clone()]
        );
        assert_eq!(Marker::find_all(&ledger_note(&[start, warning])).len(), 2);
    }

    #[test]
    fn a_cycle_s_thread_is_found_by_policy_cycle_and_channel() {
        let markers = vec![
            marker("start", Some(("C0ALERTS", "1.1"))),
            marker("breach", None),
        ];
        let policy = PolicyName("critical bug: 24h".into());
        assert_eq!(thread_of(&markers, &policy, 2, "alerts").unwrap().ts, "1.1");
        assert!(thread_of(&markers, &policy, 1, "alerts").is_none());
        assert!(thread_of(&markers, &policy, 2, "other").is_none());
    }

    #[test]
    fn broken_markers_are_ignored() {
        assert!(Marker::find_all("<!-- labelwarden:fired policy=p step=s -->").is_empty());
        assert!(
            Marker::find_all("<!-- labelwarden:fired policy=p step=s cycle=1 occurrence=1")
                .is_empty()
        );
    }
}
