//! The layer check on made-up crates: one that keeps the rule passes, and
//! each kind of breach it must catch is caught.

use super::*;

const TABLE: &str = "\
| module | layer | purpose |
|---|---|---|
| `src/engine/` | core | decides |
| `src/notify/` | port | sends |
| `src/gitlab/` | adapter | GitLab |
| `src/slack/` | adapter | Slack |
| `src/jobs/` | flow | joins |
";

fn crate_of(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(module, text)| Source {
            module: module.split("::").map(str::to_owned).collect(),
            shown: (*module).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("engine", "pub struct Firing;"),
        ("notify", "use crate::engine::Firing; pub trait Notifier {}"),
        ("gitlab", "mod actions; pub use actions::Writer;"),
        (
            "gitlab::actions",
            "use crate::notify::Notifier; pub struct Writer;",
        ),
        ("slack", "pub mod api; use crate::engine::Firing;"),
        ("slack::api", "pub struct WebApi;"),
        (
            "jobs",
            "use crate::{gitlab::actions::Writer, slack::api::WebApi};",
        ),
    ]
}

#[test]
fn a_crate_that_keeps_the_rule_passes() {
    check(&crate_of(&base()), TABLE).unwrap();
}

#[test]
fn an_adapter_importing_another_adapter_fails() {
    let mut files = base();
    files[3] = (
        "gitlab::actions",
        "pub struct Writer; fn f() { let _ = crate::slack::api::WebApi; }",
    );
    let problems = check(&crate_of(&files), TABLE).unwrap_err();
    assert!(
        problems.contains("gitlab::actions (Adapter) imports slack::api (Adapter)"),
        "{problems}"
    );
}

#[test]
fn a_port_naming_an_adapters_type_fails() {
    let mut files = base();
    files[1] = (
        "notify",
        "pub trait Notifier { fn ledger(&self) -> Option<crate::gitlab::Writer>; }",
    );
    let problems = check(&crate_of(&files), TABLE).unwrap_err();
    assert!(
        problems.contains("notify (Port) imports gitlab (Adapter)"),
        "{problems}"
    );
}

#[test]
fn a_circle_inside_one_folder_fails() {
    let mut files = base();
    files.push(("jobs::outbox", "use super::mutes::hold; pub fn retry() {}"));
    files.push(("jobs::mutes", "pub fn hold() { super::outbox::retry() }"));
    let problems = check(&crate_of(&files), TABLE).unwrap_err();
    assert!(problems.contains("an import circle"), "{problems}");
    assert!(
        problems.contains("jobs::mutes -> jobs::outbox"),
        "{problems}"
    );
    assert!(
        problems.contains("jobs::outbox -> jobs::mutes"),
        "{problems}"
    );
}

#[test]
fn test_code_and_a_modules_own_face_do_not_count() {
    let mut files = base();
    files[3] = (
        "gitlab::actions",
        "use crate::gitlab::Writer as _; pub struct Writer;
         #[cfg(test)] mod tests { use crate::slack::api::WebApi; }",
    );
    check(&crate_of(&files), TABLE).unwrap();
}

#[test]
fn a_module_missing_from_the_table_fails() {
    let mut files = base();
    files.push(("metrics", "pub fn count() {}"));
    let problems = check(&crate_of(&files), TABLE).unwrap_err();
    assert!(problems.contains("`src/metrics` is not in"), "{problems}");
}
