//! The fake GitLab's repository files and merge-request notes, as GitLab
//! documents them: `GET /projects/:id/repository/tree` (recursive, paged,
//! `404 Tree Not Found` for an unknown ref or path), `GET
//! /projects/:id/repository/files/:file_path/raw` (`404 File Not Found`),
//! and a merge request's notes (list, create, edit).

use super::*;

/// Every file at one ref: (path, content).
type Files = Vec<(String, String)>;

/// A merge request's notes: (note id, body).
type Notes = Vec<(u64, String)>;

/// What the fake holds of repositories and merge requests.
#[derive(Default)]
pub(super) struct Repositories {
    /// (project id, ref) and the files at that ref.
    pub commits: Vec<((u64, String), Files)>,
    /// (project id, merge request iid) and its notes.
    pub merge_request_notes: Vec<((u64, u64), Notes)>,
}

impl FakeGitLab {
    /// Every file of `project` at `reference` (a SHA, branch or tag).
    pub fn add_commit(&self, project: &str, reference: &str, files: Files) {
        let id = project_id(project);
        let mut inner = self.lock();
        if !inner.projects.iter().any(|(_, known)| *known == id) {
            inner.projects.push((project.to_owned(), id));
        }
        inner
            .repositories
            .commits
            .push(((id, reference.to_owned()), files));
    }

    /// A merge request of `project`, with no notes yet.
    pub fn add_merge_request(&self, project: &str, iid: u64) {
        let id = project_id(project);
        let mut inner = self.lock();
        if !inner.projects.iter().any(|(_, known)| *known == id) {
            inner.projects.push((project.to_owned(), id));
        }
        inner
            .repositories
            .merge_request_notes
            .push(((id, iid), Vec::new()));
    }

    /// The bodies of a merge request's notes, oldest first.
    pub fn merge_request_notes(&self, project: &str, iid: u64) -> Vec<String> {
        let id = project_id(project);
        self.lock()
            .repositories
            .merge_request_notes
            .iter()
            .find(|(key, _)| *key == (id, iid))
            .map(|(_, notes)| notes.iter().map(|(_, body)| body.clone()).collect())
            .unwrap_or_default()
    }

    /// The id of a project named by id or path.
    fn known_project(&self, project: &str) -> Option<u64> {
        self.lock()
            .projects
            .iter()
            .find(|(path, id)| path == project || id.to_string() == project)
            .map(|(_, id)| *id)
    }
}

/// The files of the project and ref a repository request names (`ref`
/// defaults to `main`): `None` for a ref the fake does not have, or the
/// answer when the request is refused or the project is unknown.
async fn commit_files(
    gitlab: &FakeGitLab,
    project: &str,
    query: &HashMap<String, String>,
    (uri, headers): (&Uri, &HeaderMap),
) -> Result<Option<Files>, Response> {
    if let Some(refused) = gitlab.front_door("GET", uri, headers).await {
        return Err(refused);
    }
    let Some(id) = gitlab.known_project(project) else {
        return Err(project_not_found());
    };
    let reference = query.get("ref").cloned().unwrap_or_else(|| "main".into());
    Ok(gitlab
        .lock()
        .repositories
        .commits
        .iter()
        .find(|(key, _)| *key == (id, reference.clone()))
        .map(|(_, files)| files.clone()))
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

pub(super) async fn tree(
    State(gitlab): State<FakeGitLab>,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let files = match commit_files(&gitlab, &project, &query, (&uri, &headers)).await {
        Ok(Some(files)) => files,
        Ok(None) => return message(StatusCode::NOT_FOUND, "404 Tree Not Found"),
        Err(answer) => return answer,
    };
    let folder = query.get("path").cloned().unwrap_or_default();
    let recursive = query.get("recursive").map(String::as_str) == Some("true");
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{}/", folder.trim_end_matches('/'))
    };
    let mut entries: Vec<Value> = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    for (path, _) in &files {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        for depth in 1..parts.len() {
            let sub = format!("{prefix}{}", parts[..depth].join("/"));
            if (recursive || depth == 1) && !folders.contains(&sub) {
                folders.push(sub);
            }
        }
        if recursive || parts.len() == 1 {
            entries.push(json!({
                "id": format!("{:040x}", path.len()),
                "name": parts[parts.len() - 1],
                "type": "blob",
                "path": path,
                "mode": "100644",
            }));
        }
    }
    if entries.is_empty() && folders.is_empty() {
        return message(StatusCode::NOT_FOUND, "404 Tree Not Found");
    }
    for folder in folders {
        entries.push(json!({
            "id": format!("{:040x}", folder.len()),
            "name": folder.rsplit('/').next().unwrap_or_default(),
            "type": "tree",
            "path": folder,
            "mode": "040000",
        }));
    }
    page(&uri, &query, entries)
}

pub(super) async fn raw_file(
    State(gitlab): State<FakeGitLab>,
    Path((project, file_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let files = match commit_files(&gitlab, &project, &query, (&uri, &headers)).await {
        Ok(files) => files.unwrap_or_default(),
        Err(answer) => return answer,
    };
    let content = files
        .into_iter()
        .find(|(path, _)| *path == file_path)
        .map(|(_, content)| content);
    match content {
        Some(content) => (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            content,
        )
            .into_response(),
        None => message(StatusCode::NOT_FOUND, "404 File Not Found"),
    }
}

fn note_json(id: u64, iid: u64, body: &str) -> Value {
    json!({
        "id": id,
        "body": body,
        "author": { "id": 99, "username": "labelwarden-bot" },
        "created_at": "2026-11-29T09:00:00Z",
        "updated_at": "2026-11-29T09:00:00Z",
        "system": false,
        "noteable_id": 20_000 + iid,
        "noteable_type": "MergeRequest",
        "noteable_iid": iid,
        "internal": false,
    })
}

/// The notes of a merge request, or `404 Not found` when there is none.
fn with_notes(
    gitlab: &FakeGitLab,
    project: &str,
    iid: u64,
    answer: impl FnOnce(&mut Notes, &mut u64) -> Response,
) -> Response {
    let Some(id) = gitlab.known_project(project) else {
        return project_not_found();
    };
    let mut inner = gitlab.lock();
    let Inner {
        repositories,
        next_note_id,
        ..
    } = &mut *inner;
    match repositories
        .merge_request_notes
        .iter_mut()
        .find(|(key, _)| *key == (id, iid))
    {
        Some((_, notes)) => answer(notes, next_note_id),
        None => message(StatusCode::NOT_FOUND, "404 Not found"),
    }
}

pub(super) async fn list_merge_request_notes(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gitlab.front_door("GET", &uri, &headers).await {
        return refused;
    }
    with_notes(&gitlab, &project, iid, |notes, _| {
        let mut listed: Vec<Value> = notes
            .iter()
            .map(|(id, body)| note_json(*id, iid, body))
            .collect();
        if query.get("sort").map(String::as_str) != Some("asc") {
            listed.reverse();
        }
        page(&uri, &query, listed)
    })
}

pub(super) async fn create_merge_request_note(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid)): Path<(String, u64)>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = gitlab.front_door("POST", &uri, &headers).await {
        return refused;
    }
    let Some(text) = form_or_json_body(&body) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
    };
    with_notes(&gitlab, &project, iid, |notes, next_id| {
        *next_id += 1;
        notes.push((*next_id, text.clone()));
        (
            StatusCode::CREATED,
            axum::Json(note_json(*next_id, iid, &text)),
        )
            .into_response()
    })
}

pub(super) async fn edit_merge_request_note(
    State(gitlab): State<FakeGitLab>,
    Path((project, iid, note)): Path<(String, u64, u64)>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = gitlab.front_door("PUT", &uri, &headers).await {
        return refused;
    }
    let Some(text) = form_or_json_body(&body) else {
        return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
    };
    with_notes(&gitlab, &project, iid, |notes, _| {
        match notes.iter_mut().find(|(id, _)| *id == note) {
            Some((_, existing)) => {
                *existing = text.clone();
                axum::Json(note_json(note, iid, &text)).into_response()
            }
            None => message(StatusCode::NOT_FOUND, "404 Not found"),
        }
    })
}

/// The `body` field of a form-encoded or JSON request, as GitLab takes both.
fn form_or_json_body(body: &str) -> Option<String> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return value["body"].as_str().map(str::to_owned);
    }
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == "body")
        .map(|(_, value)| value.into_owned())
}
