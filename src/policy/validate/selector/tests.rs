/// The errors for one policy whose `match:` is written over lines 2-3.
fn errors(conditions: &str, clock: &str) -> Vec<String> {
    let yaml = format!(
        "policies:\n  - name: p\n    match:\n      labels_any: [bug]\n{conditions}    clock: {clock}\n"
    );
    super::super::tests::errors(&yaml)
}

const LABEL_STOPPED: &str = "{ target: 1h, stops: { labeled: [triaged] } }";

#[test]
fn every_condition_is_accepted_in_its_documented_forms() {
    let conditions = concat!(
        "      assignees: none\n",
        "      authors: [ada, \"bot-*\"]\n",
        "      milestone: [\"17.*\"]\n",
        "      weight: { at_least: 1, at_most: 3 }\n",
        "      state: opened\n",
        "      created: { older_than: 2d, newer_than: 30d }\n",
        "      updated: { older_than: 14d }\n",
    );
    assert_eq!(errors(conditions, LABEL_STOPPED), Vec::<String>::new());
    for form in [
        "      assignees: any\n",
        "      assignees: [ada]\n",
        "      milestone: none\n",
        "      weight: none\n",
        "      weight: { at_most: 0 }\n",
    ] {
        assert_eq!(
            errors(form, "{ target: 1h }"),
            Vec::<String>::new(),
            "{form}"
        );
    }
}

#[test]
fn a_wrong_keyword_or_shape_is_refused_at_its_line_naming_the_forms() {
    let found = errors("      assignees: nobody\n", "{ target: 1h }");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("p.yml:5:"), "{found:?}");
    assert!(
        found[0].contains("`any`, `none` or a list of names"),
        "{found:?}"
    );

    let found = errors("      weight: 3\n", "{ target: 1h }");
    assert!(found[0].starts_with("p.yml:5:"), "{found:?}");
    assert!(found[0].contains("at_least: 3, at_most: 3"), "{found:?}");
}

#[test]
fn impossible_conditions_are_refused_with_line_and_field() {
    let found = errors(
        concat!(
            "      weight: { at_least: 5, at_most: 2 }\n",
            "      created: { older_than: 30d, newer_than: 2d }\n",
            "      updated: {}\n",
            "      milestone: []\n",
            "      state: open\n",
        ),
        LABEL_STOPPED,
    );
    let expected = [
        (
            "p.yml:5:",
            "`policies[p].match.weight`",
            "no weight matches",
        ),
        (
            "p.yml:6:",
            "`policies[p].match.created`",
            "never hold together",
        ),
        (
            "p.yml:7:",
            "`policies[p].match.updated`",
            "needs `older_than`",
        ),
        ("p.yml:8:", "`policies[p].match.milestone`", "write `none`"),
        (
            "p.yml:9:",
            "`policies[p].match.state`",
            "not `opened` or `closed`",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (error, (at, field, says)) in found.iter().zip(expected) {
        assert!(
            error.starts_with(at) && error.contains(field) && error.contains(says),
            "{error} should be {at} {field} {says}"
        );
    }
}

#[test]
fn a_state_condition_on_a_clock_that_closing_resolves_is_refused() {
    let found = errors("      state: opened\n", "{ target: 1h }");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("p.yml:5:"), "{found:?}");
    assert!(
        found[0].contains("withdraw it instead of resolving it"),
        "{found:?}"
    );
    assert_eq!(
        errors("      state: opened\n", LABEL_STOPPED),
        Vec::<String>::new()
    );
}

#[test]
fn a_bad_duration_or_name_pattern_is_refused() {
    let found = errors(
        "      created: { older_than: 2 }\n      authors: [\" ada\"]\n",
        "{ target: 1h }",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|e| e.contains("`policies[p].match.created.older_than`"))
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("`policies[p].match.authors`"))
    );
}
