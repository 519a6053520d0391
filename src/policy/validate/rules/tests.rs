use super::*;

use super::super::tests::checked;

#[test]
fn a_rule_becomes_a_grace_clock_with_one_acting_step() {
    let set = checked(concat!(
        "rules:\n",
        "  - name: needs-owner\n",
        "    match: { labels_any: [\"priority::highest\"], assignees: none }\n",
        "    unless: { labels_any: [\"wontfix\"] }\n",
        "    after: 15m\n",
        "    actions:\n",
        "      add_labels: [\"needs-owner\"]\n",
        "      comment: \"@oncall {issue.ref} has no assignee\"\n",
        "      internal: true\n",
    ))
    .unwrap();
    let rule = &set.policies[0];
    assert_eq!(rule.kind, PolicyKind::Rule);
    assert!(!rule.reported, "a rule makes no promise audit reports");
    assert_eq!(rule.clock.target, TimeDelta::minutes(15));
    assert_eq!(rule.clock.stops, StopRule::Never);
    assert!(rule.selector.unless.is_some());
    assert_eq!(rule.steps.len(), 1);
    assert_eq!(rule.steps[0].trigger, Trigger::Act);
    let gitlab = rule.steps[0].gitlab.as_ref().unwrap();
    assert_eq!(gitlab.add_labels, ["needs-owner"]);
    assert!(gitlab.comment && gitlab.internal);
}

#[test]
fn a_rule_that_does_nothing_or_says_an_unknown_variable_is_refused() {
    let errors = checked(concat!(
        "rules:\n",
        "  - name: idle\n",
        "    match: { labels_any: [x] }\n",
        "    actions: {}\n",
        "  - name: chatty\n",
        "    match: { labels_any: [x] }\n",
        "    actions: { comment: \"{deadline} passed\" }\n",
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("p.yml:4:") && errors[0].contains("does nothing"));
    assert!(
        errors[1].starts_with("p.yml:7:") && errors[1].contains("unknown variable `{deadline}`")
    );
}

#[test]
fn rules_that_undo_each_other_s_labels_are_refused() {
    let errors = checked(concat!(
        "rules:\n",
        "  - name: mark\n",
        "    match: { labels_any: [bug] }\n",
        "    actions: { add_labels: [triage] }\n",
        "  - name: unmark\n",
        "    match: { labels_any: [triage] }\n",
        "    actions: { remove_labels: [triage] }\n",
        "  - name: dither\n",
        "    match: { labels_any: [y] }\n",
        "    actions: { add_labels: [z], remove_labels: [z] }\n",
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("p.yml:5:"), "{errors:#?}");
    assert!(errors[0].contains("removes `triage`, which rule `mark` (p.yml:2:"));
    assert!(errors[1].starts_with("p.yml:8:") && errors[1].contains("adds and removes `z`"));
}

#[test]
fn a_rule_and_a_policy_may_not_share_a_name() {
    let errors = checked(concat!(
        "policies:\n",
        "  - name: same\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n",
        "rules:\n",
        "  - name: same\n    match: { labels_any: [x] }\n    actions: { add_labels: [y] }\n",
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("`rules[same].name`: a policy or rule with this name"));
}

#[test]
fn a_rule_s_slack_message_is_checked_like_a_step_s() {
    let channels = concat!(
        "channels:\n",
        "  alerts: { slack_channel: \"#alerts\" }\n",
        "  users: { slack_channel: \"#status\", audience: users }\n",
        "people:\n",
        "  leads: [\"<@U0LEAD0001>\"]\n",
    );
    let set = checked(&format!(
        "{channels}rules:\n  - name: tell\n    match: {{ labels_any: [x] }}\n    actions: {{ slack: {{ channel: alerts, mention: [leads] }} }}\n"
    ))
    .unwrap();
    let slack = set.policies[0].steps[0]
        .slack
        .as_ref()
        .expect("a Slack part");
    assert_eq!(
        (slack.channel.as_str(), slack.mentions.len()),
        ("alerts", 1)
    );

    let errors = checked(&format!(
        concat!(
            "{}rules:\n",
            "  - name: unknown\n    match: {{ labels_any: [x] }}\n    actions: {{ slack: {{ channel: nowhere }} }}\n",
            "  - name: reacts\n    match: {{ labels_any: [x] }}\n    actions: {{ slack: {{ channel: alerts, react: eyes }} }}\n",
            "  - name: users-guess\n    match: {{ labels_any: [x] }}\n    actions: {{ slack: {{ channel: users }} }}\n",
        ),
        channels
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("no channel named `nowhere`"),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains("no earlier message to react on"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("`rules[users-guess].actions.slack.text`")
            && errors[2].contains("say in `text:` what they should read"),
        "{errors:#?}"
    );
}

#[test]
fn a_rule_assigns_a_rotation_s_role_and_nothing_else() {
    let people = concat!(
        "people:\n",
        "  gitlab_users: { ada: U0ADA00001 }\n",
        "  oncall:\n",
        "    rotation: [ada]\n",
        "    hand_off: { day: monday, time: \"09:00\", time_zone: UTC }\n",
        "    since: 2026-01-05\n",
    );
    let set = checked(&format!(
        "{people}rules:\n  - name: own\n    match: {{ labels_any: [x] }}\n    actions: {{ assign: oncall.secondary }}\n"
    ))
    .unwrap();
    let (rotation, role) = set.policies[0].steps[0]
        .assign_on_call
        .as_ref()
        .expect("an assignment");
    assert_eq!(
        (rotation.name.as_str(), role.as_str()),
        ("oncall", "secondary")
    );

    let errors = checked(&format!(
        "{people}rules:\n  - name: own\n    match: {{ labels_any: [x] }}\n    actions: {{ assign: ada }}\n"
    ))
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("`rules[own].actions.assign`: `ada` is not a rotation's role")
            && errors[0].contains("(rotations: oncall)"),
        "{errors:#?}"
    );
}
