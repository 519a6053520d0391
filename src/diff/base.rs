//! Where `diff --base` reads the policies before the change: a folder, or
//! the policy folder at a git commit (a SHA, branch or tag), read with the
//! local `git` when the policy folder is in a git checkout that has it, or
//! else through GitLab's repository API (the merge request's project,
//! `CI_PROJECT_ID`, or `--base-project`), so a job image needs no git.
//! The `tests/` folder is skipped as the loader skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gitlab::client::GitLabClient;
use crate::gitlab::repository;
use crate::policy::folder::TESTS_FOLDER;
use crate::policy::{PolicyError, PolicySet};

/// Why the base policies could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(
        "`{base}` is neither a folder nor a commit of the git checkout around {policies}; in a pipeline, set CI_PROJECT_ID (or --base-project) to read it from GitLab"
    )]
    NotFound { base: String, policies: String },
    #[error("reading the policies at `{base}` with git: {message}")]
    Git { base: String, message: String },
    #[error("reading the policies at `{base}` from GitLab: {source}")]
    GitLab {
        base: String,
        source: crate::gitlab::GitLabError,
    },
    #[error("no policy files under {folder} at `{base}`")]
    Empty { base: String, folder: String },
    #[error("the policies at `{base}` are invalid:\n{}", .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        base: String,
        errors: Vec<PolicyError>,
    },
}

/// Where to read the base from, when it is a commit and not a folder.
pub struct FromGitLab<'a> {
    pub client: &'a GitLabClient,
    pub project: &'a str,
}

/// The base policy set. `policies` is the folder after the change (its
/// path inside the repository is the base's too).
pub async fn load(
    base: &str,
    policies: &Path,
    gitlab: Option<FromGitLab<'_>>,
) -> Result<PolicySet, BaseError> {
    let folder = Path::new(base);
    if folder.is_dir() {
        return crate::policy::load(folder).map_err(|errors| BaseError::Invalid {
            base: base.to_owned(),
            errors,
        });
    }
    let texts = match git_files(base, policies)? {
        Some(texts) => texts,
        None => match gitlab {
            Some(gitlab) => gitlab_files(base, policies, gitlab).await?,
            None => {
                return Err(BaseError::NotFound {
                    base: base.to_owned(),
                    policies: policies.display().to_string(),
                });
            }
        },
    };
    let texts: Vec<(PathBuf, String)> = texts
        .into_iter()
        .filter(|(path, _)| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "ics")
        })
        .collect();
    if texts.is_empty() {
        return Err(BaseError::Empty {
            base: base.to_owned(),
            folder: policies.display().to_string(),
        });
    }
    crate::policy::folder::from_texts(texts).map_err(|errors| BaseError::Invalid {
        base: base.to_owned(),
        errors,
    })
}

/// Whether `relative` (a path inside the policy folder) is a policy file
/// and not a test.
fn is_policy_file(relative: &str) -> bool {
    !relative.starts_with(&format!("{TESTS_FOLDER}/"))
}

fn git(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
}

/// The policy files at commit `base` read with the local git, named
/// `base:path`; `None` when there is no git, no checkout, or no such commit.
fn git_files(base: &str, policies: &Path) -> Result<Option<Vec<(PathBuf, String)>>, BaseError> {
    let dir = if policies.is_dir() {
        policies.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    let commit = format!("{base}^{{commit}}");
    let Some(found) = git(&dir, &["rev-parse", "--verify", "--quiet", &commit]) else {
        return Ok(None);
    };
    if !found.status.success() {
        return Ok(None);
    }
    let failed = |message: String| BaseError::Git {
        base: base.to_owned(),
        message,
    };
    // The policy folder's path inside the repository.
    let prefix = git(&dir, &["rev-parse", "--show-prefix"])
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .ok_or_else(|| failed("cannot tell where the policy folder is in the repository".into()))?;
    let listed = git(
        &dir,
        &[
            "ls-tree",
            "-r",
            "--full-name",
            "--name-only",
            base,
            "--",
            ".",
        ],
    )
    .ok_or_else(|| failed("git did not run".into()))?;
    if !listed.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&listed.stderr).trim().to_owned(),
        ));
    }
    let mut files = Vec::new();
    for path in String::from_utf8_lossy(&listed.stdout).lines() {
        let relative = path.strip_prefix(&prefix).unwrap_or(path);
        if !is_policy_file(relative) {
            continue;
        }
        let shown = git(&dir, &["show", &format!("{base}:{path}")])
            .filter(|o| o.status.success())
            .ok_or_else(|| failed(format!("cannot read {path}")))?;
        files.push((
            PathBuf::from(format!("{base}:{path}")),
            String::from_utf8_lossy(&shown.stdout).into_owned(),
        ));
    }
    Ok(Some(files))
}

/// The policy files at commit `base` from GitLab's repository API.
async fn gitlab_files(
    base: &str,
    policies: &Path,
    gitlab: FromGitLab<'_>,
) -> Result<Vec<(PathBuf, String)>, BaseError> {
    let folder = policies
        .to_string_lossy()
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned();
    let files = repository::files_at(gitlab.client, gitlab.project, &folder, base)
        .await
        .map_err(|source| BaseError::GitLab {
            base: base.to_owned(),
            source,
        })?;
    Ok(files
        .into_iter()
        .filter(|(path, _)| {
            let relative = path.strip_prefix(&format!("{folder}/")).unwrap_or(path);
            is_policy_file(relative)
        })
        .map(|(path, content)| {
            (
                PathBuf::from(format!("{base}:{path}")),
                String::from_utf8_lossy(&content).into_owned(),
            )
        })
        .collect())
}
