use super::*;
use crate::audit::evaluate;
use crate::test_support::{fetched, issue, policy_set, t};

const POLICIES: &str = concat!(
    "policies:\n",
    "  - name: critical\n",
    "    match: { labels_any: [\"priority::highest\"] }\n",
    "    clock: { target: 24h }\n",
    "    escalation:\n",
    "      - on: { before_deadline: 6h }\n",
    "        gitlab: { comment: true }\n",
    "  - name: quiet\n",
    "    match: { labels_any: [\"severity::1\"] }\n",
    "    clock: { target: 4h }\n",
    "rules:\n",
    "  - name: needs-owner\n",
    "    match: { labels_any: [\"priority::highest\"], assignees: none }\n",
    "    after: 15m\n",
    "    actions: { add_labels: [\"needs-owner\"] }\n",
);

fn context(now: DateTime<Utc>) -> Context<'static> {
    Context {
        watchdog: None,
        scope: "project acme/app",
        now,
        issues_read: 3,
    }
}

/// Three issues as of day 2: #1 breached and unassigned, #2 inside the
/// warning window and assigned, #3 labelled ten minutes ago, confidential
/// and unassigned (the rule's grace still running).
fn audited() -> (Vec<FetchedIssue>, PolicySet, DateTime<Utc>) {
    let set = policy_set(POLICIES);
    let now = t(48 * 60);
    let mut two = fetched(
        issue(&[])
            .iid(2)
            .added(30 * 60, "priority::highest")
            .assigned(&["ada"])
            .build(),
    );
    two.title = "Search | slow".into();
    let mut three = fetched(
        issue(&[])
            .iid(3)
            .added(48 * 60 - 10, "priority::highest")
            .assigned(&[])
            .confidential()
            .build(),
    );
    three.title = "Leaked tokens".into();
    let issues = vec![
        fetched(
            issue(&[])
                .iid(1)
                .added(0, "priority::highest")
                .assigned(&[])
                .build(),
        ),
        two,
        three,
    ];
    (issues, set, now)
}

#[test]
fn each_policy_lists_its_breaches_and_near_misses_and_each_rule_its_violations() {
    let (issues, set, now) = audited();
    let rows = evaluate(&issues, &set, now);
    let rules = rule_matches(&issues, &set, now);
    assert_eq!(
        rules.iter().map(|m| m.issue.as_str()).collect::<Vec<_>>(),
        ["acme/app#1", "acme/app#3"],
        "the assigned issue does not break the rule"
    );
    let text = body(&rows, &rules, &set, &context(now));
    assert!(
        text.starts_with("<!-- labelwarden:summary scope=\"project acme/app\" -->\n"),
        "{text}"
    );
    let critical = &text[text.find("### Policy `critical`").unwrap()..];
    let critical = &critical[..critical.find("### Policy `quiet`").unwrap()];
    assert!(
        critical.contains("1 breached, 1 near the deadline, 1 ok"),
        "{critical}"
    );
    assert!(
        critical.contains(":red_circle: | [acme/app#1]("),
        "{critical}"
    );
    assert!(
        critical.contains(":warning: | [acme/app#2](https://gitlab.example.com/acme/app/-/issues/42) Search \\| slow"),
        "a title's pipe is kept out of the table: {critical}"
    );
    assert!(
        critical.contains("| ada |") && !text.contains("@ada"),
        "assignees are named without a mention: {critical}"
    );
    assert!(
        !critical.contains("acme/app#3"),
        "an ok clock is not listed"
    );
    assert!(text.contains("### Policy `quiet`\n\nNo clocks in this run.\n"));
    let rule = &text[text.find("### Rule `needs-owner`").unwrap()..];
    assert!(rule.contains("2 issues break it now."), "{rule}");
    assert!(
        rule.contains("| due since 2026-11-02 09:15 UTC |"),
        "{rule}"
    );
    assert!(rule.contains("(in 5m)"), "the grace still runs: {rule}");
    assert!(
        !text.contains("Leaked tokens")
            && rule.contains("acme/app#3](")
            && rule.contains(CONFIDENTIAL),
        "a confidential title stays out: {text}"
    );
    assert!(text.contains("2 rule violations."), "{text}");
}

#[test]
fn a_long_list_is_cut_and_the_rest_counted() {
    let set = policy_set(POLICIES);
    let now = t(48 * 60);
    let issues: Vec<FetchedIssue> = (1..=LISTED_AT_MOST as u64 + 7)
        .map(|iid| {
            fetched(
                issue(&[])
                    .iid(iid)
                    .added(0, "priority::highest")
                    .assigned(&[])
                    .build(),
            )
        })
        .collect();
    let rows = evaluate(&issues, &set, now);
    let text = body(
        &rows,
        &rule_matches(&issues, &set, now),
        &set,
        &context(now),
    );
    assert_eq!(
        text.matches(":red_circle:").count(),
        LISTED_AT_MOST,
        "{text}"
    );
    assert_eq!(
        text.matches("… and 7 more: the pipeline's own report lists them all.")
            .count(),
        2,
        "the policy's list and the rule's: {text}"
    );
}
