//! `audit --cache DIR`: each candidate's history (its label and state
//! events) kept between runs, keyed by the issue's global id and its
//! `updated_at`. GitLab bumps `updated_at` on every label and state
//! change, so an entry whose `updated_at` still matches the listing is
//! the history GitLab would send; any other is read again and replaced.
//! The listing's own facts (labels, state, assignees) are always fresh.
//!
//! The cache is an optimisation, never a source of truth: a file that is
//! corrupt, of another format version, or for another GitLab or scope is
//! ignored with a warning (and overwritten), and deleting it changes only
//! the request count. `--notify`'s ledger stays in the issues' notes.
//!
//! The file (`labelwarden-history.json` in the folder) is compact JSON: a
//! header, then per issue its `updated_at`, path, iid and events as
//! `[unix ms, kind, label]` triples. Entries of issues a run no longer
//! lists are dropped when it saves, so the file tracks the candidates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::issue::{Event, TimedEvent};

/// What the file says it is.
const FORMAT: &str = "labelwarden-history-cache";
/// Bumped whenever what an entry holds changes meaning.
const VERSION: u32 = 1;
/// The file in the cache folder.
pub const FILE_NAME: &str = "labelwarden-history.json";

/// The whole file.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    version: u32,
    /// The GitLab instance and scope the histories are of.
    gitlab: String,
    scope: String,
    /// By the issue's global id.
    issues: BTreeMap<u64, Entry>,
}

/// One issue's history as of its `updated_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "u")]
    updated_at: DateTime<Utc>,
    #[serde(rename = "p")]
    project: String,
    #[serde(rename = "i")]
    iid: u64,
    #[serde(rename = "e")]
    events: Vec<(i64, u8, Option<String>)>,
}

const LABEL_REMOVED: u8 = 0;
const LABEL_ADDED: u8 = 1;
const REOPENED: u8 = 2;
const CLOSED: u8 = 3;

fn encode(event: &TimedEvent) -> (i64, u8, Option<String>) {
    let at = event.at.timestamp_millis();
    match &event.event {
        Event::LabelRemoved(label) => (at, LABEL_REMOVED, Some(label.clone())),
        Event::LabelAdded(label) => (at, LABEL_ADDED, Some(label.clone())),
        Event::Reopened => (at, REOPENED, None),
        Event::Closed => (at, CLOSED, None),
    }
}

fn decode((at, kind, label): &(i64, u8, Option<String>)) -> Option<TimedEvent> {
    let at = Utc.timestamp_millis_opt(*at).single()?;
    let event = match (*kind, label) {
        (LABEL_REMOVED, Some(label)) => Event::LabelRemoved(label.clone()),
        (LABEL_ADDED, Some(label)) => Event::LabelAdded(label.clone()),
        (REOPENED, None) => Event::Reopened,
        (CLOSED, None) => Event::Closed,
        _ => return None,
    };
    Some(TimedEvent { at, event })
}

#[derive(Debug, Default)]
struct State {
    issues: BTreeMap<u64, Entry>,
    /// Ids a run looked up or stored: what it keeps when it saves.
    seen: BTreeSet<u64>,
    hits: u64,
    misses: u64,
}

/// The histories of one GitLab instance and scope.
#[derive(Debug)]
pub struct HistoryCache {
    path: PathBuf,
    gitlab: String,
    scope: String,
    state: Mutex<State>,
}

/// How a run used the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Histories taken from the cache.
    pub hits: u64,
    /// Histories read from GitLab (absent, stale, or unusable entries).
    pub misses: u64,
}

impl HistoryCache {
    /// The cache in `dir` for `gitlab` and `scope`, and a warning when a
    /// file was there but could not be used.
    pub fn open(dir: &Path, gitlab: &str, scope: &str) -> (HistoryCache, Option<String>) {
        let path = dir.join(FILE_NAME);
        let mut cache = HistoryCache {
            path: path.clone(),
            gitlab: gitlab.to_owned(),
            scope: scope.to_owned(),
            state: Mutex::default(),
        };
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (cache, None),
            Err(e) => {
                return (
                    cache,
                    Some(format!(
                        "cannot read the history cache {}: {e}",
                        path.display()
                    )),
                );
            }
        };
        let ignored = |why: String| {
            Some(format!(
                "ignoring the history cache {}: {why}; every history is read from GitLab",
                path.display()
            ))
        };
        let file: CacheFile = match serde_json::from_slice(&text) {
            Ok(file) => file,
            Err(e) => return (cache, ignored(format!("it is not a cache file ({e})"))),
        };
        let warning = if file.format != FORMAT || file.version != VERSION {
            ignored(format!(
                "it is {} version {}, not {FORMAT} version {VERSION}",
                file.format, file.version
            ))
        } else if file.gitlab != gitlab || file.scope != scope {
            ignored(format!(
                "it is of {} at {}, not {scope} at {gitlab}",
                file.scope, file.gitlab
            ))
        } else {
            cache
                .state
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .issues = file.issues;
            None
        };
        (cache, warning)
    }

    /// A cache that lives as long as its process (`serve`'s reconcile):
    /// never read from or saved to a file.
    pub fn in_memory(scope: &str) -> HistoryCache {
        HistoryCache {
            path: PathBuf::new(),
            gitlab: String::new(),
            scope: scope.to_owned(),
            state: Mutex::default(),
        }
    }

    /// Forgets what the last run saw, keeping the histories of the issues
    /// it did: a process-long cache drops what its next full pass does
    /// not list.
    pub fn forget_unseen(&self) {
        let mut state = self.state();
        let seen = std::mem::take(&mut state.seen);
        state.issues.retain(|id, _| seen.contains(id));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The history of issue `id` if the cache has it as of `updated_at`.
    pub fn get(&self, id: u64, updated_at: DateTime<Utc>) -> Option<Vec<TimedEvent>> {
        let mut state = self.state();
        state.seen.insert(id);
        let events = state
            .issues
            .get(&id)
            .filter(|entry| entry.updated_at == updated_at)
            .map(|entry| entry.events.iter().map(decode).collect::<Option<Vec<_>>>());
        match events {
            Some(Some(events)) => {
                state.hits += 1;
                Some(events)
            }
            // Absent, stale, or an event this version cannot read.
            _ => {
                state.misses += 1;
                None
            }
        }
    }

    /// Keeps the history of issue `id` as of `updated_at`, replacing any
    /// older one.
    pub fn put(
        &self,
        id: u64,
        updated_at: DateTime<Utc>,
        project: &str,
        iid: u64,
        events: &[TimedEvent],
    ) {
        let mut state = self.state();
        state.seen.insert(id);
        state.issues.insert(
            id,
            Entry {
                updated_at,
                project: project.to_owned(),
                iid,
                events: events.iter().map(encode).collect(),
            },
        );
    }

    pub fn stats(&self) -> CacheStats {
        let state = self.state();
        CacheStats {
            hits: state.hits,
            misses: state.misses,
        }
    }

    /// Writes the entries this run saw (atomically: a crash leaves the
    /// old file or the new one, never half of one).
    pub fn save(&self) -> Result<(), String> {
        let issues: BTreeMap<u64, Entry> = {
            let state = self.state();
            state
                .issues
                .iter()
                .filter(|(id, _)| state.seen.contains(id))
                .map(|(id, entry)| (*id, entry.clone()))
                .collect()
        };
        let file = CacheFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            gitlab: self.gitlab.clone(),
            scope: self.scope.clone(),
            issues,
        };
        let text = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let partial = self.path.with_extension("json.partial");
        std::fs::write(&partial, text)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        std::fs::rename(&partial, &self.path)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::t;

    fn events() -> Vec<TimedEvent> {
        vec![
            TimedEvent {
                at: t(0),
                event: Event::LabelAdded("priority::highest".into()),
            },
            TimedEvent {
                at: t(60),
                event: Event::Closed,
            },
            TimedEvent {
                at: t(90),
                event: Event::Reopened,
            },
            TimedEvent {
                at: t(120),
                event: Event::LabelRemoved("priority::highest".into()),
            },
        ]
    }

    #[test]
    fn a_history_comes_back_as_of_its_updated_at_and_a_stale_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, warning) =
            HistoryCache::open(dir.path(), "https://gitlab.example.com", "project g/p");
        assert_eq!(warning, None, "no file yet is no warning");
        cache.put(1001, t(120), "g/p", 1, &events());
        cache.save().unwrap();

        let (cache, warning) =
            HistoryCache::open(dir.path(), "https://gitlab.example.com", "project g/p");
        assert_eq!(warning, None);
        assert_eq!(cache.get(1001, t(120)), Some(events()));
        assert_eq!(cache.get(1001, t(180)), None, "updated since: stale");
        assert_eq!(cache.get(1002, t(120)), None, "never seen");
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 2 });
        // Replaced by the newer history.
        cache.put(1001, t(180), "g/p", 1, &events()[..1]);
        assert_eq!(cache.get(1001, t(180)).map(|e| e.len()), Some(1));
    }

    #[test]
    fn entries_a_run_did_not_see_are_dropped_when_it_saves() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = HistoryCache::open(dir.path(), "g", "s");
        cache.put(1, t(0), "g/p", 1, &[]);
        cache.put(2, t(0), "g/p", 2, &[]);
        cache.save().unwrap();
        let (cache, _) = HistoryCache::open(dir.path(), "g", "s");
        assert!(cache.get(2, t(0)).is_some());
        cache.save().unwrap();
        let (cache, _) = HistoryCache::open(dir.path(), "g", "s");
        assert!(cache.get(1, t(0)).is_none(), "issue 1 was not listed");
        assert!(cache.get(2, t(0)).is_some());
    }

    #[test]
    fn a_corrupt_or_foreign_cache_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{\"format\": 3").unwrap();
        let (cache, warning) = HistoryCache::open(dir.path(), "g", "s");
        assert!(warning.unwrap().contains("it is not a cache file"));
        assert!(cache.get(1, t(0)).is_none());

        let (cache, _) = HistoryCache::open(dir.path(), "g", "project a/b");
        cache.put(1, t(0), "a/b", 1, &events());
        cache.save().unwrap();
        let (other, warning) = HistoryCache::open(dir.path(), "g", "project c/d");
        assert!(
            warning
                .unwrap()
                .contains("it is of project a/b at g, not project c/d at g"),
            "another scope's cache is not trusted"
        );
        assert!(other.get(1, t(0)).is_none());

        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            text.replace("\"version\":1", "\"version\":99"),
        )
        .unwrap();
        let (cache, warning) = HistoryCache::open(dir.path(), "g", "project a/b");
        assert!(warning.unwrap().contains("version 99"));
        assert!(cache.get(1, t(0)).is_none());
    }
}
