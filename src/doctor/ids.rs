//! The Slack ids the policy files need, looked up from the Slack API so
//! that every `REPLACEME` is replaced by copying: each `#name`
//! channel's id (an id survives renames), each GitLab username of
//! `people.gitlab_users` (and any name or email asked for) as a Slack user
//! id, and each user-group handle asked for as a mention.

use serde_json::Value;

use super::slack::{conversations, listing};
use crate::policy::{Destination, PolicySet};
use crate::slack::SlackError;
use crate::slack::api::WebApi;

/// Whether a Slack user is the one asked for: by handle, display name,
/// real name or email, ignoring case.
fn is_person(user: &Value, asked: &str) -> bool {
    let asked = asked.trim_start_matches('@').to_lowercase();
    let profile = &user["profile"];
    [
        &user["name"],
        &user["real_name"],
        &profile["display_name"],
        &profile["real_name"],
        &profile["email"],
    ]
    .iter()
    .filter_map(|v| v.as_str())
    .any(|field| field.to_lowercase() == asked)
}

fn described(user: &Value) -> String {
    let name = user["real_name"]
        .as_str()
        .or(user["profile"]["real_name"].as_str())
        .unwrap_or("?");
    format!("{name} (@{})", user["name"].as_str().unwrap_or("?"))
}

/// What to paste into the policy files, as YAML with comments; `people`
/// are names or emails to look up besides the GitLab usernames, `groups`
/// user-group handles.
pub async fn lookup(
    api: &WebApi,
    policies: &PolicySet,
    people: &[String],
    groups: &[String],
) -> Result<String, SlackError> {
    let mut out = String::new();
    let channels = conversations(api).await?;
    out.push_str("channels:\n");
    for channel in policies.channels.values() {
        let Destination::SlackChannel(target) = &channel.destination else {
            continue;
        };
        let Some(name) = target.strip_prefix('#') else {
            out.push_str(&format!("  # {}: already an id ({target})\n", channel.name));
            continue;
        };
        match channels.iter().find(|c| c["name"].as_str() == Some(name)) {
            Some(found) => out.push_str(&format!(
                "  {}: {{ slack_channel: {} }}   # {target}{}\n",
                channel.name,
                found["id"].as_str().unwrap_or("?"),
                if found["is_member"] == Value::Bool(true) {
                    ""
                } else {
                    "; invite the bot: /invite @labelwarden"
                }
            )),
            None => out.push_str(&format!(
                "  # {}: {target} not found (private channels show once the bot is invited)\n",
                channel.name
            )),
        }
    }
    let users = listing(api, "users.list", "members", &[]).await?;
    let users: Vec<&Value> = users
        .iter()
        .filter(|u| u["deleted"] != Value::Bool(true) && u["is_bot"] != Value::Bool(true))
        .collect();
    out.push_str("people:\n  gitlab_users:\n");
    for (username, id) in &policies.people.gitlab_users {
        match users.iter().find(|u| is_person(u, username)) {
            Some(user) => out.push_str(&format!(
                "    {username}: {}   # {}\n",
                user["id"].as_str().unwrap_or("?"),
                described(user)
            )),
            None => out.push_str(&format!(
                "    # {username}: no Slack user by that name (now {id}); ask by email: --person NAME@…\n"
            )),
        }
    }
    if !people.is_empty() || !groups.is_empty() {
        out.push_str("  # mentions, for people groups:\n");
    }
    for asked in people {
        match users.iter().find(|u| is_person(u, asked)) {
            Some(user) => out.push_str(&format!(
                "  #   {asked}: \"<@{}>\"   # {}\n",
                user["id"].as_str().unwrap_or("?"),
                described(user)
            )),
            None => out.push_str(&format!("  #   {asked}: no such Slack user\n")),
        }
    }
    if !groups.is_empty() {
        let answer = api.get_json("usergroups.list", &[]).await?;
        let known = answer["usergroups"].as_array().cloned().unwrap_or_default();
        for handle in groups {
            let wanted = handle.trim_start_matches('@');
            match known.iter().find(|g| g["handle"].as_str() == Some(wanted)) {
                Some(group) => out.push_str(&format!(
                    "  #   @{wanted}: \"<!subteam^{}>\"\n",
                    group["id"].as_str().unwrap_or("?")
                )),
                None => out.push_str(&format!("  #   @{wanted}: no such user group\n")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_person_is_found_by_handle_name_or_email_in_any_case() {
        let user = json!({
            "id": "U0JANE0001", "name": "jane", "real_name": "Jane Doe",
            "profile": { "display_name": "Jane", "email": "Jane.Doe@example.com" },
        });
        for asked in ["jane", "@Jane", "Jane Doe", "jane.doe@example.com"] {
            assert!(is_person(&user, asked), "{asked}");
        }
        assert!(!is_person(&user, "john"));
        assert_eq!(described(&user), "Jane Doe (@jane)");
    }
}
