//! Reads a policy folder from disk: every `*.yml` / `*.yaml` below it
//! except its `tests/` folder, in path order, parsed and validated
//! together, and the files they name beside them (a calendar's
//! `holidays_ics:`). The only part of `policy` that does I/O; parsing and
//! validation themselves are pure.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::file::PolicyFile;
use super::shape;
use super::validate::{ParsedFile, validate};
use super::{PolicyError, PolicySet};

/// Loads and checks every policy file under `dir`. On failure, returns every
/// error found: unreadable and unparsable files, then the semantic problems
/// of the files that did parse.
pub fn load(dir: &Path) -> Result<PolicySet, Vec<PolicyError>> {
    let paths = policy_files(dir).map_err(|e| vec![e])?;
    if paths.is_empty() {
        return Err(vec![PolicyError::NoFiles {
            dir: dir.to_owned(),
        }]);
    }
    let mut errors = Vec::new();
    let mut texts = Vec::with_capacity(paths.len());
    let companions =
        files_ending(dir, Some(&dir.join(TESTS_FOLDER)), &[COMPANION]).map_err(|e| {
            vec![PolicyError::ReadFolder {
                dir: dir.to_owned(),
                message: e.to_string(),
            }]
        })?;
    for path in paths.into_iter().chain(companions) {
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push((path, text)),
            Err(e) => errors.push(PolicyError::ReadFile {
                file: path,
                message: e.to_string(),
            }),
        }
    }
    match (from_texts(texts), errors.is_empty()) {
        (Ok(set), true) => Ok(set),
        (Ok(_), false) => Err(errors),
        (Err(more), _) => {
            errors.extend(more);
            super::sort_errors(&mut errors);
            Err(errors)
        }
    }
}

/// The extension of files a policy file may name beside it: iCalendar
/// holidays.
const COMPANION: &str = "ics";

/// Parses and validates policy files given as (path, text): a folder
/// read from disk, or from a commit (`diff --base`). The paths are what
/// errors name. `.ics` files among them are what calendars'
/// `holidays_ics:` name, relative to the policy file naming them.
pub fn from_texts(files: Vec<(PathBuf, String)>) -> Result<PolicySet, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(files.len());
    let (companions, files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(path, _)| path.extension().is_some_and(|e| e == COMPANION));
    let companions: BTreeMap<PathBuf, String> = companions
        .into_iter()
        .map(|(path, text)| (tidy(&path), text))
        .collect();
    for (path, text) in files {
        let (content, shape_errors) = shape::parse::<PolicyFile>(&path, &text);
        errors.extend(shape_errors);
        if let Some(mut content) = content {
            let beside = path.parent().unwrap_or(Path::new(""));
            for entry in content.calendars.values_mut() {
                let calendar = &mut entry.value;
                if let Some(named) = &calendar.holidays_ics {
                    let wanted = tidy(&beside.join(named.value.trim()));
                    calendar.holidays_ics_text =
                        Some(companions.get(&wanted).cloned().ok_or_else(|| {
                            format!("no file {} beside the policy files", wanted.display())
                        }));
                }
            }
            parsed.push(ParsedFile {
                path: Arc::new(path),
                content,
            });
        }
    }
    match validate(parsed) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => {
            super::sort_errors(&mut errors);
            Err(errors)
        }
        Err(semantic) => {
            errors.extend(semantic);
            super::sort_errors(&mut errors);
            Err(errors)
        }
    }
}

/// The folder inside a policy folder that holds policy tests
/// (`policies/tests/*.yml`, read by `labelwarden test`): the loader skips it.
pub const TESTS_FOLDER: &str = "tests";

/// Policy files under `dir`, recursively (but not its tests folder),
/// sorted so that "defined first" in error messages means the same thing
/// on every machine.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    yaml_files(dir, Some(&dir.join(TESTS_FOLDER))).map_err(|e| PolicyError::ReadFolder {
        dir: dir.to_owned(),
        message: e.to_string(),
    })
}

/// A path with its `.` and `..` parts resolved, as written (no disk).
fn tidy(path: &Path) -> PathBuf {
    let mut parts: Vec<Component> = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

/// `*.yml` and `*.yaml` files under `dir`, recursively, in path order,
/// skipping hidden entries and the folder `skip`.
pub fn yaml_files(dir: &Path, skip: Option<&Path>) -> std::io::Result<Vec<PathBuf>> {
    files_ending(dir, skip, &["yml", "yaml"])
}

/// Files with one of `extensions` under `dir`, recursively, in path
/// order, skipping hidden entries and the folder `skip`.
fn files_ending(
    dir: &Path,
    skip: Option<&Path>,
    extensions: &[&str],
) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                if Some(path.as_path()) != skip {
                    pending.push(path);
                }
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
