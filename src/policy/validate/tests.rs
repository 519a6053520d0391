use std::path::Path;

use super::*;
use crate::policy::{Fallback, file};

/// Checks one file's text as `p.yml`: the policy set, or each error as
/// `check` says it. Shared by the selector and rules tests.
pub(super) fn checked(yaml: &str) -> Result<PolicySet, Vec<String>> {
    let path = Path::new("p.yml");
    let content = file::parse(path, yaml).map_err(|e| vec![e.to_string()])?;
    validate(vec![ParsedFile {
        path: Arc::new(path.to_owned()),
        content,
    }])
    .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// The errors `check` gives for one file's text; none when it is valid.
pub(super) fn errors(yaml: &str) -> Vec<String> {
    checked(yaml).err().unwrap_or_default()
}

const HEADER: &str = "channels:\n  alerts: { slack_channel: \"#alerts\" }\npeople:\n  leads: [\"<@U0LEAD0001>\"]\npolicies:\n";

fn with_policy(item: &str) -> Vec<String> {
    errors(&format!("{HEADER}{item}"))
}

#[test]
fn a_valid_policy_has_no_errors() {
    let found = with_policy(
        "  - name: ok\n    match: { labels_any: [\"priority::*\"] }\n    clock: { target: 24h }\n    escalation:\n      - on: breach\n        slack: { channel: alerts, mention: [leads, assignees] }\n",
    );
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn unknown_keys_name_the_key_and_its_place() {
    let found = with_policy(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h, stop: closed }\n",
    );
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("p.yml:8:"), "{found:?}");
    assert!(found[0].contains("unknown field `stop`"), "{found:?}");
}

#[test]
fn every_semantic_error_is_reported_at_once_with_line_and_field() {
    let found = with_policy(concat!(
        "  - name: p\n",                                           // line 6
        "    match: { labels_any: [x] }\n",                        // 7
        "    clock: { target: 2h, time_zone: Mars/Olympus }\n",    // 8
        "    escalation:\n",                                       // 9
        "      - on: { before_deadline: 3h }\n",                   // 10
        "        slack: { channel: alertz, mention: [nobody] }\n", // 11
    ));
    let expected = [
        (
            "p.yml:8:",
            "`policies[p].clock.time_zone`",
            "not an IANA time zone",
        ),
        (
            "p.yml:10:",
            "`policies[p].escalation[0].on.before_deadline`",
            "not shorter than the target",
        ),
        (
            "p.yml:11:",
            "`policies[p].escalation[0].slack.channel`",
            "no channel named `alertz`",
        ),
        (
            "p.yml:11:",
            "`policies[p].escalation[0].slack.mention`",
            "no group named `nobody`",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (message, (place, field, text)) in found.iter().zip(expected) {
        assert!(message.starts_with(place), "{message}");
        assert!(message.contains(field), "{message}");
        assert!(message.contains(text), "{message}");
    }
}

#[test]
fn bad_durations_are_refused_with_the_expected_form() {
    let found = with_policy(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: soon, max_pause: 30 }\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("`policies[p].clock.target`") && found[0].contains("not a duration"));
    assert!(found[1].contains("`policies[p].clock.max_pause`") && found[1].contains("no unit"));
}

#[test]
fn an_empty_match_is_refused() {
    let found =
        with_policy("  - name: p\n    match: { labels_none: [x] }\n    clock: { target: 1h }\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("`policies[p].match`: matches every issue"),
        "{found:?}"
    );
}

#[test]
fn duplicate_policy_names_point_at_the_first() {
    let policy = "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n";
    let found = with_policy(&format!("{policy}{policy}"));
    assert_eq!(
        found,
        vec![
            "p.yml:9:11: `policies[p].name`: a policy with this name is already defined at p.yml:6:11"
        ]
    );
}

#[test]
fn two_steps_with_the_same_trigger_need_an_id() {
    let found = with_policy(concat!(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
        "      - on: start\n        slack: { channel: alerts }\n",
        "      - on: start\n        slack: { channel: alerts }\n",
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("step `start` is already defined") && found[0].contains("`id:`"),
        "{found:?}"
    );
}

const ROTATION: &str = concat!(
    "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
    "people:\n",
    "  gitlab_users: { alice: U0ALICE01, bob: U0BOB0001 }\n",
    "  oncall:\n",
    "    rotation: [alice, bob]\n",
    "    hand_off: { day: monday, time: \"09:00\", time_zone: Europe/Berlin }\n",
    "    since: 2026-11-02\n",
    "    overrides:\n",
    "      - { primary: bob, from: \"2026-11-24 09:00\", until: \"2026-11-26 18:00\" }\n",
);

fn rotation_policy(mention: &str) -> String {
    format!(
        "{ROTATION}policies:\n  - name: p\n    match: {{ labels_any: [x] }}\n    clock: {{ target: 1h }}\n    escalation:\n      - on: breach\n        slack: {{ channel: alerts, mention: [{mention}] }}\n"
    )
}

#[test]
fn a_rotation_is_read_and_mentioned_by_role() {
    let path = Path::new("p.yml");
    let content = file::parse(path, &rotation_policy("oncall.secondary")).unwrap();
    let set = validate(vec![ParsedFile {
        path: Arc::new(path.to_owned()),
        content,
    }])
    .unwrap();
    let rotation = &set.people.rotations["oncall"];
    assert_eq!(rotation.members, ["alice", "bob"]);
    assert_eq!(rotation.hand_off.weekday, Weekday::Mon);
    // The override's times are Berlin times: 08:00 and 17:00 UTC.
    assert_eq!(
        rotation.overrides[0].from.unwrap().to_rfc3339(),
        "2026-11-24T08:00:00+00:00"
    );
    assert_eq!(
        rotation.overrides[0].until.to_rfc3339(),
        "2026-11-26T17:00:00+00:00"
    );
    assert_eq!(
        set.policies[0].steps[0].slack.as_ref().unwrap().mentions,
        vec![Mention::OnCall {
            rotation: "oncall".into(),
            role: Role::Secondary
        }]
    );
}

#[test]
fn rotation_mistakes_are_each_named() {
    let found = errors(&rotation_policy("oncall.tertiary, rota.primary"));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("roles are `primary` and `secondary`"),
        "{found:?}"
    );
    assert!(found[1].contains("no rotation named `rota`"), "{found:?}");

    let broken = ROTATION
        .replace("[alice, bob]", "[alice, zoe]")
        .replace("monday", "moonday")
        .replace("Europe/Berlin", "Europe/Atlantis")
        .replace("\"2026-11-26 18:00\"", "soon");
    let found = errors(&format!("{broken}policies: []\n"));
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .any(|e| e.contains("`zoe` is not under `people.gitlab_users`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("`moonday` is not a weekday")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("`Europe/Atlantis` is not an IANA time zone")),
        "{found:?}"
    );

    let typo = ROTATION.replace("since:", "sinse:");
    let found = errors(&format!("{typo}policies: []\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("unknown field `sinse`"), "{found:?}");
}

#[test]
fn unless_takes_only_acknowledged() {
    let found = with_policy(concat!(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
        "      - on: { after_start: 10m, unless: answered }\n        slack: { channel: alerts }\n",
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("`unless` takes `acknowledged`"),
        "{found:?}"
    );
}

#[test]
fn webhook_channels_cannot_react_and_user_channels_tag_nobody() {
    let found = errors(concat!(
        "channels:\n",
        "  hook: { webhook_env: SLACK_HOOK_URL }\n",
        "  public: { slack_channel: \"#help\", audience: users }\n",
        "people:\n  leads: [\"<@U0LEAD0001>\"]\n",
        "policies:\n",
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
        "      - on: resolved\n        slack: { channel: hook, react: white_check_mark }\n",
        "      - on: breach\n        slack: { channel: public, mention: [leads] }\n",
        "      - on: start\n        slack: { channel: public }\n",
    ));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("react") && found[0].contains("cannot add reactions"),
        "{found:?}"
    );
    assert!(
        found[1].contains("mention") && found[1].contains("audience: users"),
        "{found:?}"
    );
}

#[test]
fn steps_that_do_nothing_or_use_unknown_variables_are_refused() {
    let found = with_policy(concat!(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
        "      - on: start\n",
        "      - on: breach\n        slack: { channel: alerts, text: \"{issue.ref} late by {overdu}\" }\n",
        "      - on: resolved\n        gitlab: { add_labels: [\"missed::*\"] }\n",
    ));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("does nothing"));
    assert!(found[1].contains("unknown variable `{overdu}`"));
    assert!(found[2].contains("cannot have wildcards"));
}

#[test]
fn a_due_date_is_kept_from_a_live_step_and_refused_on_an_ended_one() {
    let found = with_policy(concat!(
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n",
        "      - on: start\n        gitlab: { set_due_date: true }\n",
        "      - on: resolved\n        gitlab: { set_due_date: true }\n",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("escalation[1].gitlab.set_due_date")
            && found[0].contains("put `set_due_date: true` on the `start` step"),
        "{found:?}"
    );
}

#[test]
fn channels_and_people_are_checked_for_slack_forms() {
    let found = errors(concat!(
        "channels:\n",
        "  a: { slack_channel: \"alerts channel\" }\n",
        "  b: { slack_channel: \"#b\", webhook_env: B_URL }\n",
        "  c: { webhook_env: \"https://hooks.slack.com/services/secret\" }\n",
        "people:\n",
        "  team: [\"@jdoe\"]\n",
        "  gitlab_users: { jdoe: jdoe }\n",
    ));
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found[0].contains("`channels.a.slack_channel`"));
    assert!(found[1].contains("either `slack_channel` or `webhook_env`"));
    assert!(
        found[2].contains("`channels.c.webhook_env`")
            && found[2].contains("stays out of policy files")
    );
    assert!(found[3].contains("`people.team`"));
    assert!(found[4].contains("`people.gitlab_users.jdoe`"));
    assert!(
        found[4].starts_with("p.yml:7:"),
        "listed in file order: {found:#?}"
    );
}

#[test]
fn definitions_may_come_from_other_files() {
    // The policy comes first and names a channel that a later file
    // defines; that file's destination is the one the step posts to.
    let policies = file::parse(
        Path::new("a.yml"),
        "channels:\n  triage: { slack_channel: \"#triage\" }\npolicies:\n  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 1h }\n    escalation:\n      - on: start\n        slack: { channel: alerts }\n",
    )
    .unwrap();
    let channels = file::parse(
        Path::new("b.yml"),
        "channels:\n  alerts: { slack_channel: \"#prod-alerts\", private: true }\n",
    )
    .unwrap();
    let set = validate(vec![
        ParsedFile {
            path: Arc::new("a.yml".into()),
            content: policies,
        },
        ParsedFile {
            path: Arc::new("b.yml".into()),
            content: channels,
        },
    ])
    .unwrap();
    let step = set.policies[0].steps[0].slack.as_ref().unwrap();
    let channel = &set.channels[&step.channel];
    assert_eq!(
        channel.destination,
        Destination::SlackChannel("#prod-alerts".into())
    );
    assert!(channel.private, "b.yml's channel, with its settings");
}

#[test]
fn a_channel_defined_twice_across_files_is_refused() {
    let one = || {
        file::parse(
            Path::new("x.yml"),
            "channels:\n  alerts: { slack_channel: \"#alerts\" }\n",
        )
        .unwrap()
    };
    let result = validate(vec![
        ParsedFile {
            path: Arc::new("a.yml".into()),
            content: one(),
        },
        ParsedFile {
            path: Arc::new("b.yml".into()),
            content: one(),
        },
    ]);
    let errors = result.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().starts_with("b.yml:2:"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .to_string()
            .contains("already defined at a.yml:2:"),
        "{}",
        errors[0]
    );
}

#[test]
fn storm_settings_are_read_and_their_mistakes_named() {
    let yaml = concat!(
        "channels:\n",
        "  alerts: { slack_channel: \"#alerts\", group_after: 0, group_window: 2h }\n",
        "  quiet: { slack_channel: \"#quiet\", group_after: 10, group_window: 30s }\n",
        "policies:\n",
        "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 24h }\n",
        "    adopt: loudly\n    adopt_grace: soon\n",
        "    escalation:\n      - on: breach\n        slack: { channel: quiet }\n",
    );
    let found = errors(yaml);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].contains("`channels.alerts.group_window`") && found[0].contains("longer than 1h"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("`policies[p].adopt`")
            && found[1].contains("`loudly` is not `digest`, `individual` or `silent`"),
        "{}",
        found[1]
    );
    assert!(
        found[2].contains("`policies[p].adopt_grace`"),
        "{}",
        found[2]
    );

    let fixed = yaml
        .replace("group_window: 2h", "group_window: 5m")
        .replace("adopt: loudly", "adopt: silent")
        .replace("adopt_grace: soon", "adopt_grace: 1h");
    let path = Path::new("p.yml");
    let set = validate(vec![ParsedFile {
        path: Arc::new(path.to_owned()),
        content: file::parse(path, &fixed).expect("parses"),
    }])
    .expect("valid");
    let alerts = &set.channels["alerts"];
    assert_eq!(
        (alerts.group_after, alerts.group_window),
        (0, TimeDelta::minutes(5))
    );
    let quiet = &set.channels["quiet"];
    assert_eq!(
        (quiet.group_after, quiet.group_window),
        (10, TimeDelta::seconds(30))
    );
    let adoption = set.policies[0].adoption;
    assert_eq!(
        (adoption.mode, adoption.grace),
        (AdoptMode::Silent, TimeDelta::hours(1))
    );
    // Unset, the defaults protect a channel nobody configured.
    let set = crate::test_support::policy_set(&format!(
        "{HEADER}  - name: d\n    match: {{ labels_any: [x] }}\n    clock: {{ target: 1h }}\n"
    ));
    let alerts = &set.channels["alerts"];
    assert_eq!(
        (alerts.group_after, alerts.group_window),
        (5, TimeDelta::minutes(1))
    );
    let adoption = set.policies[0].adoption;
    assert_eq!(
        (adoption.mode, adoption.grace),
        (AdoptMode::Digest, TimeDelta::minutes(15))
    );
}

#[test]
fn fallbacks_resolve_to_a_route_per_channel_and_their_mistakes_are_named() {
    let policy =
        "policies:\n  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 24h }\n";
    let yaml = format!(
        "default_fallback: backup\nchannels:\n  alerts: {{ slack_channel: \"#alerts\" }}\n  \
         backup: {{ slack_channel: \"#backup\", fallback: gitlab_comment }}\n  \
         status: {{ slack_channel: \"#status\", fallback: alerts }}\n{policy}"
    );
    let set = crate::test_support::policy_set(&yaml);
    assert_eq!(
        set.fallbacks("alerts"),
        vec![Fallback::Channel("backup".into()), Fallback::GitLabComment],
        "the default, then its own"
    );
    assert_eq!(
        set.fallbacks("status"),
        vec![
            Fallback::Channel("alerts".into()),
            Fallback::Channel("backup".into()),
            Fallback::GitLabComment
        ]
    );
    assert_eq!(set.fallbacks("backup"), vec![Fallback::GitLabComment]);

    let found = errors(&format!(
        "channels:\n  alerts: {{ slack_channel: \"#alerts\", fallback: nowhere }}\n  \
         self: {{ slack_channel: \"#self\", fallback: self }}\n  \
         a: {{ slack_channel: \"#a\", fallback: b }}\n  \
         b: {{ slack_channel: \"#b\", fallback: a }}\n{policy}"
    ));
    let said = |field: &str, text: &str| {
        found
            .iter()
            .any(|e| e.contains(&format!("`channels.{field}.fallback`")) && e.contains(text))
    };
    assert!(said("alerts", "`nowhere` is not a channel"), "{found:?}");
    assert!(said("self", "names the channel itself"), "{found:?}");
    assert!(said("a", "go round in a circle"), "{found:?}");
    assert!(said("b", "go round in a circle"), "{found:?}");
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn maintenance_windows_are_read_in_their_time_zone_and_their_mistakes_named() {
    let policy = "  - name: p\n    match: { labels_any: [x] }\n    clock: { target: 24h }\n";
    let yaml = format!(
        "{HEADER}{policy}maintenance:\n  \
         - name: deploys\n    reason: weekly deploy\n    channel: alerts\n    \
         weekly: {{ days: [sat, sunday], from: \"02:00\", until: \"04:00\", time_zone: Europe/Berlin }}\n  \
         - name: failover\n    reason: database failover\n    policy: p\n    \
         once: {{ from: \"2026-12-05 22:00\", until: \"2026-12-06 02:00\", time_zone: Europe/Berlin }}\n  \
         - name: nightly\n    reason: backups\n    project: acme/backend\n    \
         weekly: {{ from: \"23:30\", until: \"00:30\" }}\n"
    );
    let set = crate::test_support::policy_set(&yaml);
    let names: Vec<&str> = set.maintenance.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["deploys", "failover", "nightly"]);
    assert_eq!(
        set.maintenance[0].schedule(),
        "sat, sun 02:00–04:00 Europe/Berlin"
    );
    // 22:00 in Berlin in December is 21:00 UTC.
    assert_eq!(
        set.maintenance[1].schedule(),
        "2026-12-05 21:00 UTC – 2026-12-06 01:00 UTC"
    );
    assert_eq!(
        set.maintenance[2].schedule(),
        "every day 23:30–00:30 UTC",
        "no days: every day, in UTC"
    );

    let found = errors(&format!(
        "{HEADER}{policy}maintenance:\n  \
         - name: a\n    reason: x\n    channel: alertz\n    once: {{ from: \"2026-12-05T22:00:00Z\", until: \"2026-12-05T21:00:00Z\" }}\n  \
         - name: b\n    reason: \"\"\n    policy: p\n    project: acme/x\n    weekly: {{ days: [caturday], from: \"25:00\", until: \"04:00\", time_zone: Mars/Olympus }}\n  \
         - name: c\n    reason: x\n    policy: nope\n    once: {{ from: \"2026-12-01T00:00:00Z\", until: \"2026-12-09T00:00:00Z\" }}\n  \
         - name: a\n    reason: x\n    policy: p\n    weekly: {{ from: \"02:00\", until: \"02:00\" }}\n  \
         - name: d\n    reason: x\n    project: backend\n"
    ));
    let said = |field: &str, text: &str| {
        found
            .iter()
            .any(|e| e.contains(&format!("`maintenance[{field}")) && e.contains(text))
    };
    assert!(said("a].channel", "`alertz` is no channel"), "{found:?}");
    assert!(said("a].once.until", "is not after `from`"), "{found:?}");
    assert!(said("b].reason", "is empty"), "{found:?}");
    assert!(
        said("b]", "exactly one of `policy`, `channel` or `project`"),
        "{found:?}"
    );
    assert!(said("b].weekly.time_zone", "Mars/Olympus"), "{found:?}");
    assert!(said("c].policy", "`nope` is no policy"), "{found:?}");
    assert!(said("c].once.until", "more than 7 days"), "{found:?}");
    assert!(said("a].name", "already defined at p.yml:"), "{found:?}");
    assert!(said("d].project", "not a project path"), "{found:?}");
    assert!(said("d]", "exactly one of `once`"), "{found:?}");
}
