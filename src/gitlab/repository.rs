//! What `diff` reads of a project's repository and merge requests: the
//! policy files at a commit (the repository tree and raw files API, so a
//! merge-request job needs no git in its image), and the one note `diff
//! --mr-note` keeps on a merge request, found again by its marker and
//! edited in place on later pushes.

use gitlab::api::common::NameOrId;
use gitlab::api::common::SortOrder;
use gitlab::api::endpoint_prelude::{Cow, Endpoint, Method, Pageable, QueryParams};
use gitlab::api::projects::merge_requests::notes::{
    CreateMergeRequestNote, EditMergeRequestNote, MergeRequestNotes,
};
use gitlab::api::projects::repository::files::FileRaw;
use gitlab::api::{AsyncQuery, Pagination, ignore, paged, raw};
use serde::Deserialize;

use super::GitLabError;
use super::actions::Note;
use super::client::GitLabClient;

/// `GET /projects/:id/repository/tree` with its parameters in the query
/// string, as GitLab documents them. (The `gitlab` crate's `Tree` sends
/// `path`, `ref` and `recursive` as a form body, which a GET request's
/// receiver may drop, and the fake GitLab does: the default branch's top
/// level would come back instead.)
struct TreeAt<'a> {
    project: NameOrId<'a>,
    path: &'a str,
    reference: &'a str,
}

impl Endpoint for TreeAt<'_> {
    fn method(&self) -> Method {
        Method::GET
    }

    fn endpoint(&self) -> Cow<'static, str> {
        format!("projects/{}/repository/tree", self.project).into()
    }

    fn parameters(&self) -> QueryParams<'_> {
        let mut params = QueryParams::default();
        params
            .push("path", self.path)
            .push("ref", self.reference)
            .push("recursive", true);
        params
    }
}

impl Pageable for TreeAt<'_> {
    fn use_keyset_pagination(&self) -> bool {
        true
    }
}

/// An entry of the repository tree.
#[derive(Debug, Deserialize)]
struct TreeEntry {
    path: String,
    /// `blob` (a file) or `tree` (a folder).
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: u64,
}

fn unreadable(what: &str, error: impl std::fmt::Display) -> GitLabError {
    GitLabError::Unreadable {
        what: what.to_owned(),
        message: error.to_string(),
    }
}

/// Every file under `folder` of `project` at `reference` (a commit, branch
/// or tag), with its content, in path order.
pub async fn files_at(
    client: &GitLabClient,
    project: &str,
    folder: &str,
    reference: &str,
) -> Result<Vec<(String, Vec<u8>)>, GitLabError> {
    let what = format!("{folder}/ of {project} at {reference}");
    let endpoint = TreeAt {
        project: project.into(),
        path: folder,
        reference,
    };
    let entries: Vec<TreeEntry> = paged(endpoint, Pagination::All)
        .query_async(client)
        .await
        .map_err(|e| GitLabError::from_api(what.clone(), e))?;
    let mut paths: Vec<String> = entries
        .into_iter()
        .filter(|entry| entry.kind == "blob")
        .map(|entry| entry.path)
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let what = format!("{path} of {project} at {reference}");
        let endpoint = FileRaw::builder()
            .project(project)
            .file_path(path.as_str())
            .ref_(reference)
            .build()
            .map_err(|e| unreadable(&what, e))?;
        let content = raw(endpoint)
            .query_async(client)
            .await
            .map_err(|e| GitLabError::from_api(what.clone(), e))?;
        files.push((path, content));
    }
    Ok(files)
}

/// Puts `body` on merge request `iid` of `project` as the one note
/// carrying `marker`: edits the note that already does (the oldest, if
/// several), or creates it. Returns the note's id.
pub async fn upsert_merge_request_note(
    client: &GitLabClient,
    project: &str,
    iid: u64,
    marker: &str,
    body: &str,
) -> Result<u64, GitLabError> {
    let what = format!("the notes of merge request !{iid} of {project}");
    let endpoint = MergeRequestNotes::builder()
        .project(project)
        .merge_request(iid)
        .sort(SortOrder::Ascending)
        .build()
        .map_err(|e| unreadable(&what, e))?;
    let notes: Vec<Note> = paged(endpoint, Pagination::All)
        .query_async(client)
        .await
        .map_err(|e| GitLabError::from_api(what.clone(), e))?;
    if let Some(existing) = notes.iter().find(|n| !n.system && n.body.contains(marker)) {
        let endpoint = EditMergeRequestNote::builder()
            .project(project)
            .merge_request(iid)
            .note(existing.id)
            .body(body)
            .build()
            .map_err(|e| unreadable(&what, e))?;
        ignore(endpoint)
            .query_async(client)
            .await
            .map_err(|e| GitLabError::from_api(format!("note {} of {what}", existing.id), e))?;
        return Ok(existing.id);
    }
    let endpoint = CreateMergeRequestNote::builder()
        .project(project)
        .merge_request(iid)
        .body(body)
        .build()
        .map_err(|e| unreadable(&what, e))?;
    let created: Created = endpoint
        .query_async(client)
        .await
        .map_err(|e| GitLabError::from_api(format!("a note on {what}"), e))?;
    Ok(created.id)
}
