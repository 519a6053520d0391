//! The fake Slack's directory, for `labelwarden doctor`: `auth.test`,
//! `conversations.list` (public and private, paged by cursor),
//! `conversations.info`, `users.info` and `usergroups.list`, answered as
//! Slack documents them (`channel_not_found`, `user_not_found`).

use super::*;

/// Channels, users and user groups the workspace has.
#[derive(Default)]
pub(super) struct Directory {
    /// (id, name, private, the bot is a member)
    pub channels: Vec<(String, String, bool, bool)>,
    /// (id, deleted)
    pub users: Vec<(String, bool)>,
    pub usergroups: Vec<String>,
}

impl FakeSlack {
    /// A channel of the workspace; `#name` gets the id `channel_id` gives.
    pub fn add_channel(&self, name: &str, private: bool, bot_is_member: bool) {
        self.lock().directory.channels.push((
            channel_id(&format!("#{name}")),
            name.to_owned(),
            private,
            bot_is_member,
        ));
    }

    /// A user of the workspace (`deleted`: deactivated).
    pub fn add_user(&self, id: &str, deleted: bool) {
        self.lock().directory.users.push((id.to_owned(), deleted));
    }

    pub fn add_usergroup(&self, id: &str) {
        self.lock().directory.usergroups.push(id.to_owned());
    }
}

fn conversation((id, name, private, member): &(String, String, bool, bool)) -> Value {
    json!({
        "id": id, "name": name, "is_channel": true, "is_private": private,
        "is_archived": false, "is_member": member,
    })
}

/// The answer to a directory method, if `method` is one.
pub(super) fn answer(
    directory: &Directory,
    method: &str,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let ok = |mut body: Value| {
        body["ok"] = json!(true);
        Some(axum::Json(body).into_response())
    };
    match method {
        "auth.test" => ok(json!({
            "url": "https://acme.slack.com/", "team": "Acme", "user": "labelwarden",
            "team_id": "T0TEST", "user_id": BOT_USER, "bot_id": "B0LABELWDN",
        })),
        "conversations.list" => {
            // The bot sees public channels, and private ones it is in.
            let visible: Vec<Value> = directory
                .channels
                .iter()
                .filter(|(_, _, private, member)| !private || *member)
                .map(conversation)
                .collect();
            let from: usize = query
                .get("cursor")
                .and_then(|c| c.strip_prefix("dGVhbTpD"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let next = from + LISTING_PAGE;
            let cursor = if next < visible.len() {
                format!("dGVhbTpD{next}")
            } else {
                String::new()
            };
            ok(json!({
                "channels": visible.into_iter().skip(from).take(LISTING_PAGE).collect::<Vec<_>>(),
                "response_metadata": { "next_cursor": cursor },
            }))
        }
        "conversations.info" => {
            let wanted = query.get("channel").cloned().unwrap_or_default();
            match directory
                .channels
                .iter()
                .find(|c| c.0 == wanted && (!c.2 || c.3))
            {
                Some(found) => ok(json!({ "channel": conversation(found) })),
                None => Some(slack_error("channel_not_found")),
            }
        }
        "users.info" => {
            let wanted = query.get("user").cloned().unwrap_or_default();
            match directory.users.iter().find(|(id, _)| *id == wanted) {
                Some((id, deleted)) => ok(json!({ "user": { "id": id, "deleted": deleted } })),
                None => Some(slack_error("user_not_found")),
            }
        }
        "usergroups.list" => ok(json!({
            "usergroups": directory.usergroups.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
        })),
        _ => None,
    }
}
