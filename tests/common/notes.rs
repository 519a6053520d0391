//! GitLab's comment events as the tests send them: the documented `Note
//! Hook` payload moved onto a test issue, posted as GitLab posts it.

use serde_json::{Value, json};

use super::{SECRET, Server, fixtures};

/// GitLab's documented comment on an issue, as a comment on
/// `acme/backend#{iid}` by `username`.
pub fn note_hook(iid: u64, note_id: u64, body: &str, username: &str) -> Value {
    let mut hook: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("gitlab/note_hook_issue_documented.json")).unwrap(),
    )
    .unwrap();
    hook["project"]["path_with_namespace"] = json!("acme/backend");
    // The id issue deliveries give the same project (see `issue_event`).
    let project_id = super::fake_gitlab::project_id("acme/backend");
    hook["project_id"] = json!(project_id);
    hook["project"]["id"] = json!(project_id);
    hook["user"]["username"] = json!(username);
    hook["user"]["name"] = json!(format!("{username} (name)"));
    let attributes = &mut hook["object_attributes"];
    attributes["id"] = json!(note_id);
    attributes["note"] = json!(body);
    attributes["url"] = json!(format!(
        "https://gitlab.example.com/acme/backend/-/issues/{iid}#note_{note_id}"
    ));
    hook["issue"]["iid"] = json!(iid);
    hook["issue"]["state"] = json!("opened");
    hook
}

pub async fn comment(server: &Server, event: &str, uuid: &str, hook: &Value) -> (u16, String) {
    let answer = server
        .post(
            &[
                ("X-Gitlab-Token", SECRET),
                ("X-Gitlab-Event", event),
                ("X-Gitlab-Event-UUID", uuid),
                ("Content-Type", "application/json"),
            ],
            hook.to_string(),
        )
        .await;
    (answer.status().as_u16(), answer.text().await.unwrap())
}
