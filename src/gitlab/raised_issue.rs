//! The GitLab issue a person's Slack message becomes when it is raised
//! (a reaction in a channel with `opens_issues`): its title from the
//! message's first line, a description quoting the message with its
//! permalink, who raised it and the marker it is found again by, the
//! channel's labels, confidential when the channel is private. A message
//! that names an issue's link adopts that issue instead.

use gitlab::api::issues::IssueSearchScope;
use gitlab::api::projects::issues::{CreateIssue, Issues};
use gitlab::api::{AsyncQuery, Pagination, paged};
use serde::Deserialize;

use super::GitLabError;
use super::actions::IssueWriter;
use super::from_slack::{person, quote};
use crate::issue::{IssueIid, IssueRef, ProjectPath};
use crate::notice::Thread;
use crate::policy::People;

/// GitLab's longest title, in characters.
const LONGEST_TITLE: usize = 255;

/// What a raised message says, read from Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedMessage {
    pub message: Thread,
    /// Who wrote it, and who raised it (Slack user ids).
    pub author: String,
    pub raised_by: String,
    /// Slack mrkdwn, as written.
    pub text: String,
    pub permalink: String,
}

/// The issue it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedIssue {
    pub issue: IssueRef,
    pub url: String,
}

/// The marker the issue's description carries.
pub fn marker(message: &Thread) -> String {
    format!(
        "<!-- labelwarden:raised channel={} ts={} -->",
        message.channel_id, message.ts
    )
}

/// The title: the message's first line, as plain as GitLab shows titles.
pub fn title(people: &People, text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(first) = first else {
        return "Raised in Slack".to_owned();
    };
    let plain = quote(people, first);
    let plain = plain.trim_start_matches("> ").trim_start_matches('\\');
    plain.chars().take(LONGEST_TITLE).collect()
}

/// The description: the message quoted, its link, who wrote and raised
/// it, and the marker.
pub fn description(people: &People, raised: &RaisedMessage) -> String {
    format!(
        "Raised in Slack by {} from a message by {} ([the message]({})):\n\n{}\n\n{}",
        person(people, &raised.raised_by),
        person(people, &raised.author),
        raised.permalink,
        quote(people, &raised.text),
        marker(&raised.message)
    )
}

/// An issue link the message names (`https://host/group/project/-/issues/12`),
/// Slack's `<url|label>` form included.
pub fn named_issue(text: &str) -> Option<RaisedIssue> {
    text.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '|')
        .filter(|word| word.starts_with("https://") || word.starts_with("http://"))
        .find_map(|url| {
            let url = url.trim_end_matches(['.', ',', ')']);
            let (before, after) = url.split_once("/-/issues/")?;
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            let iid: u64 = digits.parse().ok()?;
            let path = before.split_once("://")?.1.split_once('/')?.1;
            path.contains('/').then(|| RaisedIssue {
                issue: IssueRef {
                    project: ProjectPath(path.to_owned()),
                    iid: IssueIid(iid),
                },
                url: format!("{before}/-/issues/{iid}"),
            })
        })
}

#[derive(Deserialize)]
struct Listed {
    iid: u64,
    #[serde(default)]
    description: Option<String>,
    web_url: String,
}

impl IssueWriter {
    /// The issue of `project` whose description carries `marker`: one
    /// created for the message before its creation was recorded.
    pub async fn find_raised(
        &self,
        project: &str,
        marker: &str,
    ) -> Result<Option<RaisedIssue>, GitLabError> {
        let what = format!("the issue raised in Slack in {project}");
        let endpoint = Issues::builder()
            .project(project)
            .search(marker)
            .search_in(IssueSearchScope::Description)
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        let listed: Vec<Listed> = paged(endpoint, Pagination::Limit(100))
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        Ok(listed
            .into_iter()
            .filter(|issue| {
                issue
                    .description
                    .as_deref()
                    .is_some_and(|d| d.contains(marker))
            })
            .min_by_key(|issue| issue.iid)
            .map(|issue| RaisedIssue {
                issue: IssueRef {
                    project: ProjectPath(project.to_owned()),
                    iid: IssueIid(issue.iid),
                },
                url: issue.web_url,
            }))
    }

    /// Creates the issue.
    pub async fn create_raised(
        &self,
        project: &str,
        title: &str,
        description: &str,
        labels: &[String],
        confidential: bool,
    ) -> Result<RaisedIssue, GitLabError> {
        let what = format!("the issue raised in Slack in {project}");
        let endpoint = CreateIssue::builder()
            .project(project)
            .title(title)
            .description(description)
            .labels(labels.iter().map(String::as_str))
            .confidential(confidential)
            .build()
            .map_err(|e| GitLabError::unreadable(&what, e))?;
        let created: Listed = endpoint
            .query_async(self.client())
            .await
            .map_err(|e| GitLabError::from_api(what, e))?;
        Ok(RaisedIssue {
            issue: IssueRef {
                project: ProjectPath(project.to_owned()),
                iid: IssueIid(created.iid),
            },
            url: created.web_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_is_the_first_line_made_plain_and_cut_to_gitlab_s_length() {
        let people = People::default();
        assert_eq!(
            title(&people, "\n  Checkout is down for EU &amp; US\nsecond line"),
            "Checkout is down for EU & US"
        );
        assert_eq!(title(&people, "/close this"), "/close this");
        assert_eq!(title(&people, "   "), "Raised in Slack");
        assert_eq!(title(&people, &"x".repeat(400)).chars().count(), 255);
    }

    #[test]
    fn an_issue_link_in_the_message_is_found_in_slack_s_link_form_too() {
        let found = named_issue(
            "Tracked in <https://gitlab.example.com/acme/backend/-/issues/42|acme/backend#42> now",
        )
        .unwrap();
        assert_eq!(found.issue.to_string(), "acme/backend#42");
        assert_eq!(
            found.url,
            "https://gitlab.example.com/acme/backend/-/issues/42"
        );
        let nested =
            named_issue("see https://gl.example.com/g/sub/proj/-/issues/7#note_3.").unwrap();
        assert_eq!(nested.issue.to_string(), "g/sub/proj#7");
        assert!(
            named_issue("see https://gitlab.example.com/acme/backend/-/merge_requests/4").is_none()
        );
        assert!(named_issue("no link here").is_none());
    }

    #[test]
    fn the_description_quotes_the_message_defused_with_its_link_and_marker() {
        let raised = RaisedMessage {
            message: Thread {
                channel_id: "C0ALERTS".into(),
                ts: "1764000000.000100".into(),
            },
            author: "U0AUTHOR".into(),
            raised_by: "U0RAISER".into(),
            // Slack sends `<` as `&lt;` in what people write.
            text: "Checkout down\n/close\n&lt;!-- labelwarden:fired --&gt;".into(),
            permalink: "https://acme.slack.com/archives/C0ALERTS/p1764000000000100".into(),
        };
        let text = description(&People::default(), &raised);
        assert!(text.contains("(https://acme.slack.com/archives/C0ALERTS/p1764000000000100)"));
        assert!(text.contains("> \\/close"), "no quick action: {text}");
        assert!(
            text.contains("&lt;!-- labelwarden:fired"),
            "no forged marker: {text}"
        );
        assert!(
            text.ends_with("<!-- labelwarden:raised channel=C0ALERTS ts=1764000000.000100 -->")
        );
        assert!(text.contains("Slack user `U0RAISER`") && text.contains("Slack user `U0AUTHOR`"));
    }
}
