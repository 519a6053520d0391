//! Checks of the definitions policies refer to: channels (a Slack
//! channel or an incoming webhook, private or not, for whom), people
//! (Slack ids, user groups, GitLab usernames) and on-call rotations.

use std::collections::BTreeSet;

use super::*;
use crate::policy::{Fallback, OpensIssues};

impl Checker {
    pub(super) fn channel(
        &mut self,
        file: &Arc<PathBuf>,
        name: &str,
        entry: &Located<ChannelEntry>,
    ) -> Option<Channel> {
        let field = format!("channels.{name}");
        let at = self.at(file, entry);
        let channel = &entry.value;
        let destination = match (&channel.slack_channel, &channel.webhook_env) {
            (Some(id), None) => self
                .check(
                    file,
                    id,
                    format!("{field}.slack_channel"),
                    slack_channel(&id.value),
                )
                .map(Destination::SlackChannel),
            (None, Some(env)) => self
                .check(
                    file,
                    env,
                    format!("{field}.webhook_env"),
                    env_var_name(&env.value),
                )
                .map(|env_var| Destination::IncomingWebhook { env_var }),
            (Some(_), Some(_)) => {
                self.fail(
                    &at,
                    &field,
                    "give either `slack_channel` or `webhook_env`, not both",
                );
                None
            }
            (None, None) => {
                self.fail(
                    &at,
                    &field,
                    "needs `slack_channel` (an id like C0123ABCD or #name) or `webhook_env`",
                );
                None
            }
        };
        let audience = match &channel.audience {
            None => Some(Audience::Team),
            Some(audience) => self.check(
                file,
                audience,
                format!("{field}.audience"),
                match audience.value.as_str() {
                    "team" => Ok(Audience::Team),
                    "users" => Ok(Audience::Users),
                    other => Err(format!("`{other}` is not `team` or `users`")),
                },
            ),
        };
        let group_after = channel
            .group_after
            .as_ref()
            .map_or(Channel::GROUP_AFTER, |n| n.value);
        let group_window = match &channel.group_window {
            None => Some(Channel::GROUP_WINDOW),
            Some(value) => self.check(
                file,
                value,
                format!("{field}.group_window"),
                duration::parse(&value.value.0).and_then(|window| {
                    if window > TimeDelta::hours(1) {
                        Err(
                            "is longer than 1h: a storm is said within the hour it happens"
                                .to_owned(),
                        )
                    } else {
                        Ok(window)
                    }
                }),
            ),
        };
        let opens_issues = match &channel.opens_issues {
            None => Some(None),
            Some(located) => {
                let wanted = &located.value;
                let project = wanted.project.trim();
                let labels: Vec<String> =
                    wanted.labels.iter().map(|l| l.trim().to_owned()).collect();
                self.check(
                    file,
                    located,
                    format!("{field}.opens_issues"),
                    if channel.slack_channel.is_none() {
                        Err(
                            "needs `slack_channel`: an incoming webhook hears no reactions"
                                .to_owned(),
                        )
                    } else if !project.contains('/')
                        || project.starts_with('/')
                        || project.ends_with('/')
                    {
                        Err(format!(
                            "`project: {project}` is not a project path like group/project"
                        ))
                    } else if labels.iter().any(String::is_empty) {
                        Err("has an empty label".to_owned())
                    } else {
                        Ok(Some(OpensIssues {
                            project: project.to_owned(),
                            labels,
                        }))
                    },
                )
            }
        };
        Some(Channel {
            name: name.to_owned(),
            opens_issues: opens_issues?,
            destination: destination?,
            private: channel.private,
            audience: audience?,
            group_after,
            group_window: group_window?,
            // Resolved once every channel is known.
            fallback: None,
        })
    }

    /// Gives each channel its fallback (its own, else the files' default)
    /// once every channel is known: the route must name a channel or
    /// `gitlab_comment`, and following routes must not come back.
    pub(super) fn fallbacks(
        &mut self,
        files: &[ParsedFile],
        channels: &mut BTreeMap<String, Channel>,
    ) {
        let known: BTreeSet<String> = channels.keys().cloned().collect();
        let mut default = None;
        for file in files {
            let Some(route) = &file.content.default_fallback else {
                continue;
            };
            if default.is_some() {
                let at = self.at(&file.path, route);
                self.fail(&at, "default_fallback", "is given in more than one file");
                continue;
            }
            default = self.check(
                &file.path,
                route,
                "default_fallback".to_owned(),
                fallback_route(&route.value, &known),
            );
        }
        for file in files {
            for (name, entry) in &file.content.channels {
                let Some(route) = &entry.value.fallback else {
                    continue;
                };
                let field = format!("channels.{name}.fallback");
                let checked = self.check(
                    &file.path,
                    route,
                    field.clone(),
                    fallback_route(&route.value, &known).and_then(|route| {
                        if route == Fallback::Channel(name.clone()) {
                            Err("names the channel itself".to_owned())
                        } else {
                            Ok(route)
                        }
                    }),
                );
                if let (Some(route), Some(channel)) = (checked, channels.get_mut(name)) {
                    channel.fallback = Some(route);
                }
            }
        }
        if let Some(default) = default {
            for (name, channel) in channels.iter_mut() {
                if channel.fallback.is_none() && default != Fallback::Channel(name.clone()) {
                    channel.fallback = Some(default.clone());
                }
            }
        }
        // A cycle: following the routes from a channel comes back to it.
        for file in files {
            for (name, entry) in &file.content.channels {
                let mut at = name.clone();
                let mut seen = BTreeSet::from([name.clone()]);
                while let Some(Fallback::Channel(next)) =
                    channels.get(&at).and_then(|c| c.fallback.clone())
                {
                    if !seen.insert(next.clone()) {
                        let site = self.at(&file.path, entry);
                        let path: Vec<String> = seen.into_iter().collect();
                        self.fail(
                            &site,
                            format!("channels.{name}.fallback"),
                            format!("the fallback routes go round in a circle ({}): end them at a channel without one, or at `gitlab_comment`", path.join(", ")),
                        );
                        break;
                    }
                    at = next;
                }
            }
        }
    }

    pub(super) fn people_entry(
        &mut self,
        file: &Arc<PathBuf>,
        name: &str,
        entry: &Located<PeopleEntry>,
        people: &mut People,
        sites: &mut BTreeMap<String, SourceLocation>,
    ) {
        let at = self.at(file, entry);
        let field = format!("people.{name}");
        match (&entry.value, name) {
            (PeopleEntry::UserMap(map), GITLAB_USERS_KEY) => {
                for (username, slack_id) in map {
                    let user_field = format!("{field}.{username}");
                    if !is_slack_user_id(slack_id) {
                        self.fail(
                            &at,
                            user_field,
                            format!("`{slack_id}` is not a Slack user id like U0123ABCD"),
                        );
                        continue;
                    }
                    let site_key = format!("{GITLAB_USERS_KEY}.{username}");
                    match people.gitlab_users.get(username) {
                        Some(existing) if existing != slack_id => {
                            let first = &sites[&site_key];
                            self.fail(
                                &at,
                                user_field,
                                format!("maps to {slack_id} here but to {existing} at {first}"),
                            );
                        }
                        Some(_) => {}
                        None => {
                            sites.insert(site_key, at.clone());
                            people
                                .gitlab_users
                                .insert(username.clone(), slack_id.clone());
                        }
                    }
                }
            }
            (PeopleEntry::UserMap(_), _) => self.fail(
                &at,
                field,
                format!("a group is a list of mentions; only `{GITLAB_USERS_KEY}` is a map"),
            ),
            (PeopleEntry::Mentions(_) | PeopleEntry::Rotation(_), GITLAB_USERS_KEY) => self.fail(
                &at,
                field,
                "must map GitLab usernames to Slack user ids, e.g. `jdoe: U0123ABCD`",
            ),
            (PeopleEntry::Mentions(_) | PeopleEntry::Rotation(_), ASSIGNEES_MENTION) => self.fail(
                &at,
                field,
                "`assignees` is reserved: it means the issue's assignees",
            ),
            (PeopleEntry::Rotation(_), _) => {
                if let Some(first) = sites.get(name) {
                    let message = format!("already defined at {first}");
                    self.fail(&at, field, message);
                } else if name.contains('.') {
                    self.fail(
                        &at,
                        field,
                        "a rotation's name cannot contain `.`: mentions write `NAME.primary`",
                    );
                } else {
                    // Checked once every file's `gitlab_users` is known.
                    sites.insert(name.to_owned(), at.clone());
                }
            }
            (PeopleEntry::Mentions(mentions), _) => {
                if let Some(first) = sites.get(name) {
                    let message = format!("already defined at {first}");
                    self.fail(&at, field, message);
                    return;
                }
                sites.insert(name.to_owned(), at.clone());
                let mut valid = true;
                for mention in mentions {
                    if !is_slack_mention(mention) {
                        valid = false;
                        self.fail(
                            &at,
                            &field,
                            format!(
                                "`{mention}` is not a Slack mention: write `<@U0123ABCD>`, \
                                 `<!subteam^S0123ABCD>` or `<!here>`"
                            ),
                        );
                    }
                }
                if mentions.is_empty() {
                    valid = false;
                    self.fail(&at, &field, "is empty: a group must tag someone");
                }
                if valid {
                    people.groups.insert(name.to_owned(), mentions.clone());
                }
            }
        }
    }

    /// A rotation, its members checked against the merged `gitlab_users`.
    pub(super) fn rotation(
        &mut self,
        at: &SourceLocation,
        name: &str,
        raw: &RotationEntry,
        people: &People,
    ) -> Option<Rotation> {
        let field = format!("people.{name}");
        let errors_before = self.errors.len();
        let known = |checker: &mut Checker, who: &str, place: String| {
            if !people.gitlab_users.contains_key(who) {
                checker.fail(
                    at,
                    place,
                    format!(
                        "`{who}` is not under `people.gitlab_users`: map their GitLab username \
                         to their Slack user id so they can be tagged"
                    ),
                );
            }
        };
        if raw.rotation.is_empty() {
            self.fail(
                at,
                format!("{field}.rotation"),
                "is empty: a rotation needs at least one person",
            );
        }
        for member in &raw.rotation {
            known(self, member, format!("{field}.rotation"));
        }
        let hand_off = &raw.hand_off;
        let weekday = hand_off.day.trim().parse::<Weekday>().ok();
        if weekday.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.day"),
                format!("`{}` is not a weekday like `monday`", hand_off.day),
            );
        }
        let time = NaiveTime::parse_from_str(hand_off.time.trim(), "%H:%M").ok();
        if time.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.time"),
                format!("`{}` is not a time of day like `09:00`", hand_off.time),
            );
        }
        let time_zone = hand_off.time_zone.trim().parse::<Tz>().ok();
        if time_zone.is_none() {
            self.fail(
                at,
                format!("{field}.hand_off.time_zone"),
                format!(
                    "`{}` is not an IANA time zone like `Europe/Berlin` or `UTC`",
                    hand_off.time_zone
                ),
            );
        }
        let since = NaiveDate::parse_from_str(raw.since.trim(), "%Y-%m-%d").ok();
        if since.is_none() {
            self.fail(
                at,
                format!("{field}.since"),
                format!("`{}` is not a date like `2026-11-02`", raw.since),
            );
        }
        let mut overrides = Vec::new();
        for (index, stand_in) in raw.overrides.iter().enumerate() {
            let place = format!("{field}.overrides[{index}]");
            let instant = |checker: &mut Checker, text: &str, key: &str| {
                let parsed = time_zone.and_then(|zone| instant_in(zone, text));
                if parsed.is_none() && time_zone.is_some() {
                    checker.fail(
                        at,
                        format!("{place}.{key}"),
                        format!("`{text}` is not a time like `2026-11-24 09:00` or RFC 3339"),
                    );
                }
                parsed
            };
            let from = stand_in
                .from
                .as_deref()
                .map(|text| instant(self, text, "from"));
            let until = instant(self, &stand_in.until, "until");
            if let (Some(Some(from)), Some(until)) = (from, until)
                && from >= until
            {
                self.fail(at, place.clone(), "`from` must come before `until`");
            }
            let roles = [
                (Role::Primary, &stand_in.primary),
                (Role::Secondary, &stand_in.secondary),
            ];
            if roles.iter().all(|(_, who)| who.is_none()) {
                self.fail(
                    at,
                    place.clone(),
                    "names nobody: give `primary`, `secondary` or both",
                );
            }
            for (role, who) in roles {
                let Some(who) = who else { continue };
                known(self, who, format!("{place}.{}", role.as_str()));
                if let Some(until) = until {
                    overrides.push(Override {
                        role,
                        person: who.clone(),
                        from: from.flatten(),
                        until,
                    });
                }
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Rotation {
            name: name.to_owned(),
            members: raw.rotation.clone(),
            hand_off: HandOff {
                weekday: weekday?,
                time: time?,
                time_zone: time_zone?,
            },
            since: since?,
            overrides,
        })
    }
}

fn slack_channel(text: &str) -> Result<String, String> {
    let valid_name = text.strip_prefix('#').is_some_and(|name| {
        !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            })
    });
    if valid_name || crate::policy::is_slack_channel_id(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a Slack channel id like C0123ABCD or a name like #alerts"
        ))
    }
}

fn env_var_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not an environment variable name like SLACK_ALERTS_WEBHOOK_URL \
             (the URL itself is a secret and stays out of policy files)"
        ))
    }
}

/// `2026-11-24 09:00` in `zone`, or an RFC 3339 instant.
pub(super) fn instant_in(zone: Tz, text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.to_utc());
    }
    ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|local| local_instant(zone, local))
}

fn is_slack_user_id(text: &str) -> bool {
    text.len() >= 9
        && matches!(text.as_bytes()[0], b'U' | b'W')
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn is_slack_mention(text: &str) -> bool {
    if matches!(text, "<!here>" | "<!channel>" | "<!everyone>") {
        return true;
    }
    if let Some(id) = text.strip_prefix("<@").and_then(|t| t.strip_suffix('>')) {
        return is_slack_user_id(id);
    }
    if let Some(id) = text
        .strip_prefix("<!subteam^")
        .and_then(|t| t.strip_suffix('>'))
    {
        return id.len() >= 9
            && id.starts_with('S')
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    }
    false
}

/// A fallback route as written: a channel's name or `gitlab_comment`.
fn fallback_route(route: &str, channels: &BTreeSet<String>) -> Result<Fallback, String> {
    if route == Fallback::GITLAB_COMMENT {
        Ok(Fallback::GitLabComment)
    } else if channels.contains(route) {
        Ok(Fallback::Channel(route.to_owned()))
    } else {
        Err(format!(
            "`{route}` is not a channel of the policy files, nor `{}`",
            Fallback::GITLAB_COMMENT
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{checked, errors};

    const POLICY: &str = "policies:\n  - name: p\n    match: { labels_any: [\"priority::highest\"] }\n    clock: { target: 24h }\n    escalation:\n      - on: start\n        slack: { channel: alerts }\n";

    #[test]
    fn a_channel_that_opens_issues_names_a_project_and_its_labels() {
        let set = checked(&format!(
            "channels:\n  alerts:\n    slack_channel: \"#alerts\"\n    opens_issues: {{ project: acme/backend, labels: [\"priority::highest\", \" type::bug \"] }}\n{POLICY}"
        ))
        .unwrap();
        let opens = set.channels["alerts"].opens_issues.clone().unwrap();
        assert_eq!(opens.project, "acme/backend");
        assert_eq!(opens.labels, ["priority::highest", "type::bug"]);
    }

    #[test]
    fn opening_issues_needs_a_bot_channel_a_project_path_and_real_labels() {
        for (channel, said) in [
            (
                "webhook_env: STATUS_WEBHOOK\n    opens_issues: { project: acme/backend }",
                "needs `slack_channel`",
            ),
            (
                "slack_channel: \"#alerts\"\n    opens_issues: { project: backend }",
                "not a project path",
            ),
            (
                "slack_channel: \"#alerts\"\n    opens_issues: { project: acme/backend, labels: [\" \"] }",
                "an empty label",
            ),
        ] {
            let found = errors(&format!("channels:\n  alerts:\n    {channel}\n{POLICY}"));
            assert!(
                found
                    .iter()
                    .any(|e| e.contains("channels.alerts.opens_issues") && e.contains(said)),
                "{channel}: {found:?}"
            );
        }
    }
}
