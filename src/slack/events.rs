//! Slack's Events API, as far as labelwarden listens to it: the request
//! signature, the `url_verification` challenge, and the events that carry
//! the handbook's protocol on an alert thread (a reaction added or
//! removed). Pure: bytes and headers in, a verdict and an event out.
//!
//! Slack signs each request: `X-Slack-Signature: v0=HEX`, the HMAC-SHA256
//! of `v0:{X-Slack-Request-Timestamp}:{body}` with the app's signing
//! secret. A request older than five minutes is refused, so a captured one
//! cannot be replayed.

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
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

/// The events labelwarden acts on; everything else is `Other`.
#[derive(Debug, Clone, PartialEq)]
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
            let event = match kind.as_str() {
                "reaction_added" | "reaction_removed" => {
                    let reaction: ReactionEvent = serde_json::from_value(raw)
                        .map_err(|e| EventError::Malformed(e.to_string()))?;
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
                _ => Event::Other,
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
}
