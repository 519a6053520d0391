//! The fake GitLab's routes: issue listings and histories, notes, issue
//! edits, single issues and projects, and project hooks, answered as
//! GitLab documents them (status codes, headers, error bodies).

use super::*;

pub(super) fn project_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "404 Project Not Found"})),
    )
        .into_response()
}

pub(super) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "404 Not Found"})),
    )
        .into_response()
}

/// Issues filtered as GitLab does: `state`, `labels` (all of them),
/// `issue_type`, `updated_after`; newest first.
pub(super) fn listing<'a>(
    issues: impl Iterator<Item = &'a FakeIssue>,
    query: &HashMap<String, String>,
) -> Vec<&'a FakeIssue> {
    let wanted: Vec<&str> = query
        .get("labels")
        .map(|l| l.split(',').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    let updated_after: Option<DateTime<Utc>> = query
        .get("updated_after")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let mut found: Vec<&FakeIssue> = issues
        .filter(|i| match query.get("state").map(String::as_str) {
            Some("opened") => i.is_open(),
            Some("closed") => !i.is_open(),
            _ => true,
        })
        .filter(|i| wanted.iter().all(|w| i.labels.iter().any(|l| l == w)))
        .filter(|i| query.get("issue_type").is_none_or(|t| &i.issue_type == t))
        .filter(|i| updated_after.is_none_or(|after| i.updated_at > after))
        .filter(|i| searched(i, query))
        .collect();
    found.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    found
}

/// `search` (with `in=title`, `in=description` or both, the default), as
/// GitLab matches it: every word of the query, case apart, in the field.
fn searched(issue: &FakeIssue, query: &HashMap<String, String>) -> bool {
    let Some(search) = query.get("search") else {
        return true;
    };
    let scopes = query.get("in").map_or("title,description", String::as_str);
    let fields: Vec<String> = scopes
        .split(',')
        .filter_map(|scope| match scope {
            "title" => Some(issue.title.to_lowercase()),
            "description" => Some(issue.description.to_lowercase()),
            _ => None,
        })
        .collect();
    search
        .to_lowercase()
        .split_whitespace()
        .all(|word| fields.iter().any(|field| field.contains(word)))
}

pub(super) async fn project_issues(
    State(gitlab): State<FakeGitLab>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    let issues = inner.issues.iter().filter(|i| i.is_in(&project));
    let exists = inner
        .projects
        .iter()
        .any(|(path, id)| *path == project || id.to_string() == project);
    if !exists {
        return project_not_found();
    }
    issues_page(&inner, &uri, &query, issues)
}

/// One page of an issue listing, counted as GitLab counts.
pub(super) fn issues_page<'a>(
    inner: &Inner,
    uri: &Uri,
    query: &HashMap<String, String>,
    issues: impl Iterator<Item = &'a FakeIssue>,
) -> Response {
    let counted_up_to = inner.counted_up_to.unwrap_or(pages::GITLAB_COUNTS_UP_TO);
    pages::page_counted(
        uri,
        query,
        listing(issues, query),
        counted_up_to,
        FakeIssue::json,
    )
}

pub(super) async fn group_issues(
    State(gitlab): State<FakeGitLab>,
    Path(group): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    let prefix = format!("{group}/");
    let mut issues = inner
        .issues
        .iter()
        .filter(|i| i.project.starts_with(&prefix))
        .peekable();
    if issues.peek().is_none() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Group Not Found"})),
        )
            .into_response();
    }
    issues_page(&inner, &uri, &query, issues)
}

pub(super) fn find<'a>(inner: &'a Inner, project: &str, iid: u64) -> Option<&'a FakeIssue> {
    inner
        .issues
        .iter()
        .find(|i| i.is_in(project) && i.iid == iid)
}

pub(super) async fn label_events(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    gitlab
        .on_issue(("GET", &uri, &headers), &project, iid, |issue, _| {
            let events: Vec<Value> = issue
            .label_events
            .iter()
            .enumerate()
            .map(|(n, (at, label, action))| {
                json!({
                    "id": n + 1,
                    "user": { "id": 1, "username": "someone" },
                    "created_at": at,
                    "resource_type": "Issue",
                    "resource_id": 10_000 + iid,
                    "label": { "id": 900, "name": label, "color": "#dc143c", "description": null },
                    "action": action,
                })
            })
            .collect();
            page(&uri, &query, events)
        })
        .await
}

pub(super) async fn state_events(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    gitlab
        .on_issue(("GET", &uri, &headers), &project, iid, |issue, _| {
            let events: Vec<Value> = issue
                .state_events
                .iter()
                .enumerate()
                .map(|(n, (at, state))| {
                    json!({
                        "id": n + 1,
                        "user": { "id": 1, "username": "someone" },
                        "created_at": at,
                        "resource_type": "Issue",
                        "resource_id": 10_000 + iid,
                        "state": state,
                    })
                })
                .collect();
            page(&uri, &query, events)
        })
        .await
}

pub(super) async fn list_notes(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    gitlab
        .on_issue(("GET", &uri, &headers), &project, iid, |issue, _| {
            let mut notes: Vec<Value> = issue
                .notes
                .iter()
                .map(|(id, at, body, internal)| {
                    json!({
                        "id": id,
                        "body": body,
                        "author": { "id": 99, "username": "labelwarden-bot" },
                        "created_at": at,
                        "updated_at": at,
                        "system": false,
                        "noteable_id": 10_000 + iid,
                        "noteable_type": "Issue",
                        "noteable_iid": iid,
                        "internal": internal,
                        "confidential": internal,
                    })
                })
                .collect();
            if query.get("sort").map(String::as_str) != Some("asc") {
                notes.reverse();
            }
            page(&uri, &query, notes)
        })
        .await
}

pub(super) async fn create_note(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    gitlab
        .on_issue(("POST", &uri, &headers), &project, iid, |issue, next_note_id| {
            let Some(body) = form.get("body").filter(|b| !b.trim().is_empty()) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"message": {"note": ["can't be blank"]}})),
                )
                    .into_response();
            };
            *next_note_id += 1;
            let id = *next_note_id;
            let internal = form.get("internal").map(String::as_str) == Some("true");
            let now = Utc::now();
            issue.notes.push((id, now, body.clone(), internal));
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": id, "body": body, "created_at": now, "system": false, "internal": internal})),
            )
                .into_response()
        })
        .await
}

pub(super) async fn edit_note(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid, note)): Path<(String, u64, u64)>,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    gitlab
        .on_issue(("PUT", &uri, &headers), &project, iid, |issue, _| {
            let Some(found) = issue.notes.iter_mut().find(|n| n.0 == note) else {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"message": "404 Not found"})),
                )
                    .into_response();
            };
            // `body` is required: GitLab answers 400 without it, and an
            // empty note is refused as it is on creation.
            let Some(body) = form.get("body") else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "body is missing"})),
                )
                    .into_response();
            };
            if body.trim().is_empty() {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"message": {"note": ["can't be blank"]}})),
                )
                    .into_response();
            }
            found.2 = body.clone();
            issue.note_edits += 1;
            (
                StatusCode::OK,
                axum::Json(json!({"id": note, "body": found.2})),
            )
                .into_response()
        })
        .await
}

pub(super) async fn edit_issue(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // A form, as the `gitlab` crate sends; or JSON, where `null` clears a
    // field (the API takes both).
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (form, due_date): (HashMap<String, String>, Option<Option<chrono::NaiveDate>>) = if json {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "the body is not a JSON object"})),
            )
                .into_response();
        };
        let due = fields.get("due_date").map(|v| {
            v.as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        });
        let form = fields
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect();
        (form, due)
    } else {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let due = match form.get("due_date").map(String::as_str) {
            None => None,
            Some(text) => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => Some(Some(date)),
                Err(_) => {
                    return (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "due_date is invalid"})),
                    )
                        .into_response();
                }
            },
        };
        (form, due)
    };
    // `assignee_ids[]` repeats, one per user (0 unassigns everyone); the
    // users are the fake's accounts (ids 100, 101, …).
    let assignee_ids: Option<Vec<u64>> = (!json).then(|| {
        url::form_urlencoded::parse(&body)
            .filter(|(key, _)| key == "assignee_ids[]")
            .filter_map(|(_, id)| id.parse().ok())
            .collect::<Vec<u64>>()
    });
    let assignee_ids = assignee_ids.filter(|ids| !ids.is_empty());
    let users = gitlab.lock().accounts.users.clone();
    gitlab
        .on_issue(("PUT", &uri, &headers), &project, iid, |issue, _| {
            let now = Utc::now();
            if let Some(ids) = &assignee_ids {
                issue.assignees = ids
                    .iter()
                    .filter_map(|id| users.get(id.checked_sub(100)? as usize))
                    .map(|(username, _)| username.clone())
                    .collect();
            }
            if let Some(due) = due_date
                && due != issue.due_date
            {
                issue.due_date = due;
                issue.due_date_writes += 1;
            }
            let list = |key: &str| -> Vec<String> {
                form.get(key)
                    .map(|v| {
                        v.split(',')
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for label in list("add_labels") {
                if !issue.labels.contains(&label) {
                    issue.labels.push(label.clone());
                    issue.label_events.push((now, label, "add"));
                }
            }
            for label in list("remove_labels") {
                if issue.labels.contains(&label) {
                    issue.labels.retain(|l| l != &label);
                    issue.label_events.push((now, label, "remove"));
                }
            }
            if let Some(description) = form.get("description") {
                issue.description = description.clone();
            }
            match form.get("state_event").map(String::as_str) {
                Some("close") if issue.is_open() => {
                    issue.closed_at = Some(now);
                    issue.state_events.push((now, "closed"));
                }
                Some("reopen") if !issue.is_open() => {
                    issue.closed_at = None;
                    issue.state_events.push((now, "reopened"));
                }
                _ => {}
            }
            issue.updated_at = now;
            (StatusCode::OK, axum::Json(issue.json())).into_response()
        })
        .await
}

pub(super) async fn single_issue(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    match find(&inner, &project, iid) {
        Some(issue) => (StatusCode::OK, axum::Json(issue.json())).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 Not found"})),
        )
            .into_response(),
    }
}

/// `GET /projects/:id`: the project by id, path, or a path it had before a
/// rename (GitLab follows its redirect routes).
pub(super) async fn single_project(
    State(gitlab): State<FakeGitLab>,
    Path(project): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    let id = inner
        .projects
        .iter()
        .chain(&inner.redirects)
        .find(|(path, id)| *path == project || id.to_string() == project)
        .map(|(_, id)| *id);
    match id.and_then(|id| inner.projects.iter().find(|(_, known)| *known == id)) {
        Some((path, id)) => axum::Json(json!({
            "id": id,
            "path_with_namespace": path,
            "web_url": format!("https://gitlab.example.com/{path}"),
        }))
        .into_response(),
        None => project_not_found(),
    }
}

pub(super) async fn hooks(
    State(gitlab): State<FakeGitLab>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = gitlab.front_door("GET", &uri, &headers).await {
        return answer;
    }
    let inner = gitlab.lock();
    if let Some(refused) = accounts::hooks_refused(&inner, &uri, &path) {
        return refused;
    }
    let hooks: Vec<Value> = inner
        .hooks
        .iter()
        .filter(|(owner, _)| owner == &path)
        .map(|(_, hook)| hook.clone())
        .collect();
    page(&uri, &query, hooks)
}

/// `POST /projects/:id/issues`: a new issue, its iid the project's next,
/// authored by the token's user.
pub(super) async fn create_issue(
    State(gitlab): State<FakeGitLab>,
    Path(project): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(answer) = gitlab.front_door("POST", &uri, &headers).await {
        return answer;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(title) = form.get("title").filter(|t| !t.trim().is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "title is missing"})),
        )
            .into_response();
    };
    let mut inner = gitlab.lock();
    let Some((path, _)) = inner
        .projects
        .iter()
        .find(|(path, id)| *path == project || id.to_string() == project)
        .cloned()
    else {
        return project_not_found();
    };
    let iid = inner
        .issues
        .iter()
        .filter(|i| i.project == path)
        .map(|i| i.iid)
        .max()
        .unwrap_or(0)
        + 1;
    let mut issue = FakeIssue::new(&path, iid, Utc::now()).authored_by("labelwarden-bot");
    issue.title = title.clone();
    issue.description = form.get("description").cloned().unwrap_or_default();
    issue.confidential = form.get("confidential").is_some_and(|c| c == "true");
    // `labels`: comma-separated, as the API takes them.
    for label in form
        .get("labels")
        .map(|l| l.split(',').map(str::trim).filter(|l| !l.is_empty()))
        .into_iter()
        .flatten()
    {
        let created = issue.created_at;
        issue = issue.add_label(created, label);
    }
    let answer = issue.json();
    inner.issues.push(issue);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}
