//! Events API callbacks as Slack sends them to `/webhooks/slack`: a
//! reaction added or removed, a reply in a thread.

use serde_json::{Value, json};

use super::{BOT_USER, Message};

/// The `authorizations` of an event: the app's bot user.
fn authorizations() -> Value {
    json!([{ "enterprise_id": null, "team_id": "T0TEST", "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false }])
}

/// A `reaction_added` / `reaction_removed` event callback, as Slack sends it.
pub fn reaction_event(
    event_id: &str,
    kind: &str,
    user: &str,
    reaction: &str,
    channel: &str,
    ts: &str,
) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "token": "unused", "team_id": "T0TEST", "api_app_id": "A0TEST",
        "type": "event_callback", "event_id": event_id, "event_time": now,
        "authorizations": authorizations(),
        "event": {
            "type": kind, "user": user, "reaction": reaction, "item_user": BOT_USER,
            "item": { "type": "message", "channel": channel, "ts": ts },
            "event_ts": format!("{now}.000100"),
        },
    })
}

/// A `message` event callback for a reply in a thread, as Slack sends it.
pub fn reply_event(event_id: &str, user: &str, parent: &Message, ts: &str, text: &str) -> Value {
    json!({
        "token": "unused", "team_id": "T0TEST", "api_app_id": "A0TEST",
        "type": "event_callback", "event_id": event_id, "event_time": chrono::Utc::now().timestamp(),
        "authorizations": authorizations(),
        "event": {
            "type": "message", "channel": parent.channel, "user": user, "text": text,
            "ts": ts, "thread_ts": parent.ts, "event_ts": ts, "channel_type": "channel",
        },
    })
}
