//! Slack's Events API, as far as labelwarden listens to it: the request
//! signature, the `url_verification` challenge, and the events that carry
//! the handbook's protocol on an alert thread (a reaction added or
//! removed, a reply in a thread). What labelwarden's own bot user did is
//! not an event to act on. The bot mentioned in a thread (`app_mention`)
//! is a command about the thread's parent (`issue LABEL…`). Pure: bytes and headers in, a verdict and an
//! event out.
//!
//! Slack signs each request: `X-Slack-Signature: v0=HEX`, the HMAC-SHA256
//! of `v0:{X-Slack-Request-Timestamp}:{body}` with the app's signing
//! secret. A request older than five minutes is refused, so a captured one
//! cannot be replayed.

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How old a signed request may be.
pub const REPLAY_WINDOW: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    Unsigned,
    #[error("X-Slack-Request-Timestamp is more than five minutes away from now")]
    Stale,
    #[error("the signature does not match: is SLACK_SIGNING_SECRET the app's signing secret?")]
    BadSignature,
    #[error("unreadable event: {0}")]
    Malformed(String),
}

/// Checks a request's signature and age.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), EventError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(EventError::Unsigned);
    };
    let sent: i64 = timestamp.trim().parse().map_err(|_| EventError::Unsigned)?;
    if (now.timestamp() - sent).abs() > REPLAY_WINDOW.num_seconds() {
        return Err(EventError::Stale);
    }
    let expected = signature
        .strip_prefix("v0=")
        .and_then(|hex_digits| hex::decode(hex_digits).ok())
        .ok_or(EventError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| EventError::BadSignature)?;
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&expected)
        .map_err(|_| EventError::BadSignature)
}

/// What a verified request asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Slack checking the endpoint when the app is configured.
    UrlVerification { challenge: String },
    /// An event, with the id Slack retries it under.
    Event { event_id: String, event: Event },
}

/// The events labelwarden acts on; everything else is `Other`. Kept in
/// the store (as JSON) until acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Reaction {
        added: bool,
        /// The Slack user who reacted.
        user: String,
        reaction: String,
        channel: String,
        /// The message reacted to.
        ts: String,
        at: DateTime<Utc>,
    },
    /// A person's reply in a thread.
    Reply {
        user: String,
        channel: String,
        /// The thread's parent message.
        thread_ts: String,
        ts: String,
        /// As Slack writes it (mrkdwn: `<@U…>`, `<url|label>`, `&lt;`).
        text: String,
    },
    /// The bot mentioned (`app_mention`) in a thread: a command about the
    /// thread's parent message.
    Mention {
        user: String,
        channel: String,
        /// The thread's parent message.
        thread_ts: String,
        text: String,
    },
    Other,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event: Option<serde_json::Value>,
    /// The installation the event is for: its bot user is labelwarden.
    #[serde(default)]
    authorizations: Vec<Authorization>,
}

#[derive(Deserialize)]
struct Authorization {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    is_bot: bool,
}

#[derive(Deserialize)]
struct MessageEvent {
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    channel: String,
    ts: String,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct ReactionEvent {
    user: String,
    reaction: String,
    item: ReactionItem,
    event_ts: String,
}

#[derive(Deserialize)]
struct ReactionItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

/// A Slack `ts` (`1764000000.000100`) as an instant.
pub fn ts_instant(ts: &str) -> Option<DateTime<Utc>> {
    let (seconds, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    let seconds: i64 = seconds.parse().ok()?;
    let micros: i64 = format!("{micros:0<6}").get(..6)?.parse().ok()?;
    DateTime::from_timestamp_micros(seconds * 1_000_000 + micros)
}

/// Reads a verified request body.
pub fn parse(body: &[u8]) -> Result<Request, EventError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    match envelope.kind.as_str() {
        "url_verification" => Ok(Request::UrlVerification {
            challenge: envelope
                .challenge
                .ok_or_else(|| EventError::Malformed("no challenge".into()))?,
        }),
        "event_callback" => {
            let event_id = envelope
                .event_id
                .ok_or_else(|| EventError::Malformed("no event_id".into()))?;
            let raw = envelope.event.unwrap_or_default();
            let kind = raw["type"].as_str().unwrap_or_default().to_owned();
            let malformed = |e: serde_json::Error| EventError::Malformed(e.to_string());
            let event = match kind.as_str() {
                "reaction_added" | "reaction_removed" => {
                    let reaction: ReactionEvent = serde_json::from_value(raw).map_err(malformed)?;
                    match (
                        reaction.item.kind.as_str(),
                        reaction.item.channel,
                        reaction.item.ts,
                    ) {
                        ("message", Some(channel), Some(ts)) => Event::Reaction {
                            added: kind == "reaction_added",
                            user: reaction.user,
                            reaction: reaction.reaction,
                            channel,
                            ts,
                            at: ts_instant(&reaction.event_ts).unwrap_or_else(Utc::now),
                        },
                        _ => Event::Other,
                    }
                }
                "app_mention" => {
                    let message: MessageEvent = serde_json::from_value(raw).map_err(malformed)?;
                    match (message.user, message.thread_ts) {
                        (Some(user), Some(thread_ts))
                            if message.bot_id.is_none() && thread_ts != message.ts =>
                        {
                            Event::Mention {
                                user,
                                channel: message.channel,
                                thread_ts,
                                text: message.text,
                            }
                        }
                        _ => Event::Other,
                    }
                }
                "message" => {
                    let message: MessageEvent = serde_json::from_value(raw).map_err(malformed)?;
                    // Plain replies and replies also sent to the channel;
                    // edits, deletions, joins and bots are not replies.
                    let plain =
                        matches!(message.subtype.as_deref(), None | Some("thread_broadcast"));
                    match (message.user, message.thread_ts) {
                        (Some(user), Some(thread_ts))
                            if plain && message.bot_id.is_none() && thread_ts != message.ts =>
                        {
                            Event::Reply {
                                user,
                                channel: message.channel,
                                thread_ts,
                                ts: message.ts,
                                text: message.text,
                            }
                        }
                        _ => Event::Other,
                    }
                }
                _ => Event::Other,
            };
            let by_labelwarden = |user: &str| {
                envelope
                    .authorizations
                    .iter()
                    .any(|a| a.is_bot && a.user_id.as_deref() == Some(user))
            };
            let event = match event {
                Event::Reaction { ref user, .. }
                | Event::Reply { ref user, .. }
                | Event::Mention { ref user, .. }
                    if by_labelwarden(user) =>
                {
                    Event::Other
                }
                event => event,
            };
            Ok(Request::Event { event_id, event })
        }
        _ => Ok(Request::Event {
            event_id: String::new(),
            event: Event::Other,
        }),
    }
}

/// Signs a body as Slack does: for tests and for checking a setup by hand.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example in Slack's documentation on verifying requests.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn slack_s_documented_example_verifies() {
        assert_eq!(sign(SECRET, 1531420618, BODY), SIGNATURE);
        let now = at(1531420618 + 60);
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Ok(())
        );
    }

    #[test]
    fn wrong_stale_or_missing_signatures_are_refused() {
        let now = at(1531420618);
        assert_eq!(
            verify(
                b"another secret",
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                now
            ),
            Err(EventError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(SIGNATURE), b"tampered", now),
            Err(EventError::BadSignature)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                at(1531420618 + 301)
            ),
            Err(EventError::Stale)
        );
        assert_eq!(
            verify(SECRET, None, Some(SIGNATURE), BODY, now),
            Err(EventError::Unsigned)
        );
    }

    #[test]
    fn reactions_on_messages_are_read_and_the_rest_ignored() {
        let body = br#"{"token":"x","team_id":"T1","type":"event_callback","event_id":"Ev01","event_time":1764000100,
            "event":{"type":"reaction_added","user":"U0JDOE","reaction":"eyes",
            "item":{"type":"message","channel":"C0ALERTS","ts":"1764000000.000100"},"item_user":"U0BOT","event_ts":"1764000100.000200"}}"#;
        match parse(body).unwrap() {
            Request::Event {
                event_id,
                event:
                    Event::Reaction {
                        added,
                        user,
                        reaction,
                        channel,
                        ts,
                        at,
                    },
            } => {
                assert_eq!(event_id, "Ev01");
                assert!(added);
                assert_eq!((user.as_str(), reaction.as_str()), ("U0JDOE", "eyes"));
                assert_eq!(
                    (channel.as_str(), ts.as_str()),
                    ("C0ALERTS", "1764000000.000100")
                );
                assert_eq!(at.timestamp(), 1764000100);
            }
            other => panic!("{other:?}"),
        }
        let file = br#"{"type":"event_callback","event_id":"Ev02","event":{"type":"reaction_added","user":"U1","reaction":"eyes","item":{"type":"file","file":"F1"},"event_ts":"1.1"}}"#;
        assert!(matches!(
            parse(file).unwrap(),
            Request::Event {
                event: Event::Other,
                ..
            }
        ));
        let challenge = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            parse(challenge).unwrap(),
            Request::UrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
            }
        );
    }

    #[test]
    fn thread_replies_are_read_and_edits_bots_and_labelwarden_itself_ignored() {
        let reply = br#"{"type":"event_callback","event_id":"Ev10","authorizations":[{"user_id":"U0BOT","is_bot":true}],
            "event":{"type":"message","channel":"C0ALERTS","user":"U0JDOE","text":"rolled back","ts":"1764000300.000200","thread_ts":"1764000000.000100","event_ts":"1764000300.000200"}}"#;
        assert_eq!(
            parse(reply).unwrap(),
            Request::Event {
                event_id: "Ev10".into(),
                event: Event::Reply {
                    user: "U0JDOE".into(),
                    channel: "C0ALERTS".into(),
                    thread_ts: "1764000000.000100".into(),
                    ts: "1764000300.000200".into(),
                    text: "rolled back".into(),
                },
            }
        );
        let ignored: [&[u8]; 4] = [
            // A message in the channel, not in a thread.
            br#"{"type":"event_callback","event_id":"Ev11","event":{"type":"message","channel":"C1","user":"U1","text":"hi","ts":"1.2"}}"#,
            // An edit.
            br#"{"type":"event_callback","event_id":"Ev12","event":{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.3","thread_ts":"1.1"}}"#,
            // Another bot.
            br#"{"type":"event_callback","event_id":"Ev13","event":{"type":"message","channel":"C1","user":"U2","bot_id":"B2","text":"beep","ts":"1.4","thread_ts":"1.1"}}"#,
            // labelwarden's own reaction (its `resolved` step).
            br#"{"type":"event_callback","event_id":"Ev14","authorizations":[{"user_id":"U0BOT","is_bot":true}],"event":{"type":"reaction_added","user":"U0BOT","reaction":"white_check_mark","item":{"type":"message","channel":"C1","ts":"1.1"},"event_ts":"1.5"}}"#,
        ];
        for body in ignored {
            assert!(
                matches!(
                    parse(body).unwrap(),
                    Request::Event {
                        event: Event::Other,
                        ..
                    }
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_bot_mentioned_in_a_thread_is_a_command_about_its_parent_and_nowhere_else() {
        let in_thread = br#"{"type":"event_callback","event_id":"Ev21","event":{"type":"app_mention","channel":"C1","user":"U1","text":"<@U0BOT> issue security","ts":"1.6","thread_ts":"1.1"}}"#;
        assert_eq!(
            parse(in_thread).unwrap(),
            Request::Event {
                event_id: "Ev21".into(),
                event: Event::Mention {
                    user: "U1".into(),
                    channel: "C1".into(),
                    thread_ts: "1.1".into(),
                    text: "<@U0BOT> issue security".into(),
                },
            }
        );
        let top_level = br#"{"type":"event_callback","event_id":"Ev22","event":{"type":"app_mention","channel":"C1","user":"U1","text":"<@U0BOT> issue","ts":"1.7"}}"#;
        assert!(matches!(
            parse(top_level).unwrap(),
            Request::Event {
                event: Event::Other,
                ..
            }
        ));
    }
}
