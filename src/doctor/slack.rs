//! Slack: the bot token works (`auth.test`); every channel the policies
//! post to exists and has the bot as a member (private ones included);
//! every user and user-group id they mention exists; every incoming
//! webhook's variable is set (never shown).

use std::collections::BTreeSet;

use serde_json::Value;

use super::Line;
use crate::policy::{Destination, PolicySet};
use crate::slack::SlackError;
use crate::slack::api::WebApi;

/// Pages of a listing read at most (200 entries each).
const MAX_PAGES: usize = 50;

pub async fn token(api: &WebApi) -> Line {
    match api.get_json("auth.test", &[]).await {
        Ok(answer) => Line::ok(
            "slack",
            format!(
                "SLACK_BOT_TOKEN works: bot {} in workspace {}",
                answer["user"].as_str().unwrap_or("?"),
                answer["team"].as_str().unwrap_or("?")
            ),
        ),
        Err(e) => Line::problem(
            "slack",
            format!("Slack refuses SLACK_BOT_TOKEN: {e}"),
            "set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…, under OAuth & Permissions)",
        ),
    }
}

/// Every entry of a paged listing method (`conversations.list`,
/// `users.list`), under `field`, following Slack's cursor.
pub(super) async fn listing(
    api: &WebApi,
    method: &'static str,
    field: &str,
    extra: &[(&'static str, &str)],
) -> Result<Vec<Value>, SlackError> {
    let mut found = Vec::new();
    let mut cursor = String::new();
    for _ in 0..MAX_PAGES {
        let mut query: Vec<(&str, String)> =
            extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        query.push(("limit", "200".to_owned()));
        if !cursor.is_empty() {
            query.push(("cursor", cursor.clone()));
        }
        let answer = api.get_json(method, &query).await?;
        found.extend(answer[field].as_array().cloned().unwrap_or_default());
        cursor = answer["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    Ok(found)
}

/// Every conversation the bot can see, public and private.
pub(super) async fn conversations(api: &WebApi) -> Result<Vec<Value>, SlackError> {
    listing(
        api,
        "conversations.list",
        "channels",
        &[
            ("types", "public_channel,private_channel"),
            ("exclude_archived", "true"),
        ],
    )
    .await
}

/// Each channel of the policy files: there, and the bot in it.
pub async fn channels(api: &WebApi, policies: &PolicySet) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut listed: Option<Vec<Value>> = None;
    for channel in policies.channels.values() {
        let target = match &channel.destination {
            Destination::SlackChannel(target) => target,
            Destination::IncomingWebhook { env_var } => {
                lines.push(match std::env::var(env_var) {
                    Ok(url) if !url.trim().is_empty() => Line::ok(
                        "slack",
                        format!("channel `{}` posts through the incoming webhook in {env_var}, which is set", channel.name),
                    ),
                    _ => Line::problem(
                        "slack",
                        format!("channel `{}` posts through the incoming webhook in {env_var}, which is not set", channel.name),
                        format!("set {env_var} to the webhook's URL (Incoming Webhooks in the Slack app)"),
                    ),
                });
                continue;
            }
        };
        let found = match target.strip_prefix('#') {
            Some(name) => {
                if listed.is_none() {
                    match conversations(api).await {
                        Ok(all) => listed = Some(all),
                        Err(e) => {
                            lines.push(Line::problem(
                                "slack",
                                format!("cannot list the workspace's channels: {e}"),
                                "give the app the channels:read and groups:read scopes and reinstall it",
                            ));
                            return lines;
                        }
                    }
                }
                listed
                    .iter()
                    .flatten()
                    .find(|c| c["name"].as_str() == Some(name))
                    .cloned()
            }
            None => match api
                .get_json("conversations.info", &[("channel", target.clone())])
                .await
            {
                Ok(answer) => Some(answer["channel"].clone()),
                Err(SlackError::Refused { code, .. }) if code == "channel_not_found" => None,
                Err(e) => {
                    lines.push(Line::problem(
                        "slack",
                        format!("cannot look up channel {target}: {e}"),
                        "give the app the channels:read and groups:read scopes",
                    ));
                    continue;
                }
            },
        };
        lines.push(match found {
            None => Line::problem(
                "slack",
                format!(
                    "channel `{}` ({target}) is not in the workspace, or is private and the bot is not in it",
                    channel.name
                ),
                format!("fix `slack_channel` in the policy files, or `/invite` the app in {target}"),
            ),
            Some(conversation) if conversation["is_member"] != Value::Bool(true) => Line::problem(
                "slack",
                format!(
                    "the bot is not a member of {target} (channel `{}`): Slack refuses its posts",
                    channel.name
                ),
                format!("`/invite` the app in {target}"),
            ),
            Some(conversation) => Line::ok(
                "slack",
                format!(
                    "channel `{}`: {target} ({}{}), the bot is a member",
                    channel.name,
                    conversation["id"].as_str().unwrap_or("?"),
                    if conversation["is_private"] == Value::Bool(true) {
                        ", private"
                    } else {
                        ""
                    }
                ),
            ),
        });
    }
    lines
}

/// The user ids (`U…`) and user-group ids (`S…`) the policy files mention.
pub fn mentioned(policies: &PolicySet) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut users = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let mentions = policies
        .people
        .groups
        .values()
        .flatten()
        .map(String::as_str)
        .chain(policies.people.gitlab_users.values().map(|id| id.as_str()));
    for mention in mentions {
        let inner = mention.trim_start_matches('<').trim_end_matches('>');
        if let Some(user) = inner.strip_prefix('@') {
            users.insert(user.to_owned());
        } else if let Some(group) = inner.strip_prefix("!subteam^") {
            groups.insert(group.split('|').next().unwrap_or(group).to_owned());
        } else if !inner.starts_with('!') {
            // gitlab_users maps to a bare user id.
            users.insert(inner.to_owned());
        }
    }
    (users, groups)
}

/// Every user and user group the policy files mention exists.
pub async fn people(api: &WebApi, policies: &PolicySet) -> Vec<Line> {
    let (users, groups) = mentioned(policies);
    let mut lines = Vec::new();
    let unfilled: Vec<&String> = users
        .iter()
        .chain(&groups)
        .filter(|id| id.contains("REPLACEME"))
        .collect();
    if !unfilled.is_empty() {
        lines.push(Line::problem(
            "people",
            format!(
                "{} Slack ids still say REPLACEME ({})",
                unfilled.len(),
                unfilled
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "run `labelwarden slack-ids` and paste what it prints (or a profile's \"Copy member ID\" in Slack)",
        ));
    }
    let mut missing = Vec::new();
    for user in users.iter().filter(|id| !id.contains("REPLACEME")) {
        match api.get_json("users.info", &[("user", user.clone())]).await {
            Ok(answer) if answer["user"]["deleted"] == Value::Bool(true) => {
                missing.push(format!("{user} (deactivated)"))
            }
            Ok(_) => {}
            Err(SlackError::Refused { code, .. }) if code == "user_not_found" => {
                missing.push(user.clone())
            }
            Err(e) => {
                lines.push(Line::problem(
                    "people",
                    format!("cannot look up Slack users: {e}"),
                    "give the app the users:read scope and reinstall it",
                ));
                return lines;
            }
        }
    }
    let real_groups: Vec<&String> = groups
        .iter()
        .filter(|id| !id.contains("REPLACEME"))
        .collect();
    if !real_groups.is_empty() {
        match api.get_json("usergroups.list", &[]).await {
            Ok(answer) => {
                let known: BTreeSet<&str> = answer["usergroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g["id"].as_str())
                    .collect();
                missing.extend(
                    real_groups
                        .iter()
                        .filter(|id| !known.contains(id.as_str()))
                        .map(|id| format!("user group {id}")),
                );
            }
            Err(e) => {
                lines.push(Line::problem(
                    "people",
                    format!("cannot list Slack user groups: {e}"),
                    "give the app the usergroups:read scope and reinstall it",
                ));
                return lines;
            }
        }
    }
    if !missing.is_empty() {
        lines.push(Line::problem(
            "people",
            format!("not in the Slack workspace: {}", missing.join(", ")),
            "fix these ids under `people` in the policy files",
        ));
    }
    if lines.is_empty() {
        lines.push(Line::ok(
            "people",
            format!(
                "all {} Slack users and {} user groups mentioned exist",
                users.len(),
                groups.len()
            ),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::policy_set;

    #[test]
    fn mentions_are_read_from_groups_and_gitlab_users() {
        let set = policy_set(concat!(
            "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
            "people:\n",
            "  contacts: [\"<@U0AAA0001>\", \"<!subteam^S0BBB0001>\", \"<!here>\"]\n",
            "  gitlab_users: { jdoe: U0CCC0001 }\n",
            "policies: []\n",
        ));
        let (users, groups) = mentioned(&set);
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            ["U0AAA0001", "U0CCC0001"]
        );
        assert_eq!(groups.into_iter().collect::<Vec<_>>(), ["S0BBB0001"]);
    }
}
