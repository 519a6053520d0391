//! The fake Slack's directory, for `labelwarden doctor` and `slack-ids`:
//! `auth.test`, `conversations.list` (public and private, paged by
//! cursor), `conversations.info`, `users.info`, `users.list` (paged) and
//! `usergroups.list`, answered as Slack documents them
//! (`channel_not_found`, `user_not_found`).

use super::*;

/// Channels or users a page: small, so callers must follow the cursor.
const DIRECTORY_PAGE: usize = 2;

/// Channels, users and user groups the workspace has.
#[derive(Default)]
pub(super) struct Directory {
    /// (id, name, private, the bot is a member)
    pub channels: Vec<(String, String, bool, bool)>,
    /// Users as `users.info` and `users.list` show them.
    pub users: Vec<Value>,
    /// (id, handle)
    pub usergroups: Vec<(String, String)>,
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
        let handle = id.to_lowercase();
        self.lock().directory.users.push(json!({
            "id": id, "name": handle, "deleted": deleted, "is_bot": false,
            "real_name": handle, "profile": { "display_name": handle, "real_name": handle },
        }));
    }

    /// A person with a handle, a real name and an email.
    pub fn add_person(&self, id: &str, handle: &str, real_name: &str, email: &str) {
        self.lock().directory.users.push(json!({
            "id": id, "name": handle, "deleted": false, "is_bot": false, "real_name": real_name,
            "profile": { "display_name": handle, "real_name": real_name, "email": email },
        }));
    }

    pub fn add_usergroup(&self, id: &str) {
        self.add_usergroup_handle(id, &id.to_lowercase());
    }

    pub fn add_usergroup_handle(&self, id: &str, handle: &str) {
        self.lock()
            .directory
            .usergroups
            .push((id.to_owned(), handle.to_owned()));
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
            ok(paged("channels", visible, query))
        }
        "users.list" => ok(paged("members", directory.users.clone(), query)),
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
            match directory.users.iter().find(|u| u["id"] == wanted.as_str()) {
                Some(user) => ok(json!({ "user": user })),
                None => Some(slack_error("user_not_found")),
            }
        }
        "usergroups.list" => ok(json!({
            "usergroups": directory
                .usergroups
                .iter()
                .map(|(id, handle)| json!({ "id": id, "handle": handle }))
                .collect::<Vec<_>>(),
        })),
        _ => None,
    }
}

/// One page of `items` under `field`, after the request's cursor: Slack
/// may return fewer than asked with more to come, so callers must follow
/// `next_cursor`.
fn paged(field: &str, items: Vec<Value>, query: &HashMap<String, String>) -> Value {
    let from: usize = query
        .get("cursor")
        .and_then(|c| c.strip_prefix("dGVhbTpD"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let next = from + DIRECTORY_PAGE;
    let cursor = if next < items.len() {
        format!("dGVhbTpD{next}")
    } else {
        String::new()
    };
    let mut page = json!({ "response_metadata": { "next_cursor": cursor } });
    page[field] = json!(
        items
            .into_iter()
            .skip(from)
            .take(DIRECTORY_PAGE)
            .collect::<Vec<_>>()
    );
    page
}
