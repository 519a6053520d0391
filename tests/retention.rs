//! Retention and backups through `serve`: an issue whose clocks ended is
//! forgotten after `--retain`, a running clock never is, applied
//! deliveries go; and a backup taken while `serve` runs restores every
//! running clock, whose deadline then fires on time.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{Options, issue_event, sqlite, start_server};
use labelwarden::issue::{IssueIid, IssueRef, ProjectPath};
use labelwarden::notify::LogNotifier;
use labelwarden::store::Store;
use labelwarden::store::retention::Retention;
use labelwarden::store::sql::SqlStore;

const POLICY: &str = r#"
policies:
  - name: critical
    match: { labels_any: ["priority::highest"] }
    clock: { target: 4s }
    escalation:
      - on: breach
        gitlab: { add_labels: ["missed::SLA"] }
"#;

fn policies(dir: &Path) -> Arc<labelwarden::policy::PolicySet> {
    let folder = dir.join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("critical.yml"), POLICY).unwrap();
    Arc::new(labelwarden::policy::load(&folder).expect("policies load"))
}

fn issue(iid: u64) -> IssueRef {
    IssueRef {
        project: ProjectPath("acme/backend".into()),
        iid: IssueIid(iid),
    }
}

/// How many of `status` the server's store holds.
async fn clocks_in(server: &common::Server, status: &str) -> i64 {
    server
        .stats()
        .await
        .clocks
        .iter()
        .filter(|(_, s, _)| s == status)
        .map(|(_, _, n)| n)
        .sum()
}

/// Waits up to `within` for `n` clocks in `status`.
async fn clocks_become(server: &common::Server, status: &str, n: i64, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while clocks_in(server, status).await != n {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test]
async fn ended_issues_are_forgotten_running_ones_kept_and_applied_deliveries_go() {
    let dir = tempfile::tempdir().unwrap();
    let database = sqlite(&dir.path().join("db.sqlite"));
    let retention = Retention {
        ended: Some(TimeDelta::seconds(1)),
        delivery_keys: TimeDelta::zero(),
        every: Duration::from_millis(100),
    };
    let server = start_server(
        policies(dir.path()),
        &database,
        LogNotifier,
        Options {
            retention: Some(retention),
            ..Options::default()
        },
    )
    .await;
    let now = Utc::now();
    let long_ago = now - TimeDelta::days(300);
    // #80 was labelled and closed in time; #81 was labelled 300 days ago
    // and is still open: breached, and running.
    server
        .deliver(
            "ret-1",
            &issue_event(80, long_ago, long_ago, &[], &["priority::highest"], false),
        )
        .await;
    server
        .deliver(
            "ret-2",
            &issue_event(
                80,
                long_ago,
                long_ago + TimeDelta::seconds(1),
                &["priority::highest"],
                &["priority::highest"],
                true,
            ),
        )
        .await;
    server
        .deliver(
            "ret-3",
            &issue_event(81, long_ago, long_ago, &[], &["priority::highest"], false),
        )
        .await;
    let store = SqlStore::connect(&database).await.unwrap();
    let known = |iid| {
        let store = store.clone();
        async move {
            store.load_issues(&[issue(iid)]).await.unwrap()[0]
                .record
                .is_some()
        }
    };
    let mut stored = false;
    for _ in 0..50 {
        if known(80).await && known(81).await {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "both issues are applied first");
    let mut forgotten = false;
    for _ in 0..150 {
        if store.load_issues(&[issue(80)]).await.unwrap()[0]
            .record
            .is_none()
        {
            forgotten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(forgotten, "#80 ended: forgotten after the retention");
    let kept = store.load_issues(&[issue(81)]).await.unwrap().remove(0);
    assert!(kept.record.is_some(), "#81 runs: kept whatever its age");
    assert_eq!(clocks_in(&server, "breached").await, 1);
    let deliveries = store
        .size()
        .await
        .unwrap()
        .tables
        .into_iter()
        .find(|(table, _)| table == "deliveries")
        .map(|(_, rows)| rows);
    assert_eq!(deliveries, Some(0), "applied, and past their key's window");
    // `/metrics` shows the store's rows per table and its size, as of the
    // last round.
    let mut shown = None;
    for _ in 0..100 {
        shown = server
            .metric("labelwarden_store_rows{table=\"issues\"}")
            .await;
        if shown == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, Some(1.0), "#81 alone");
    assert!(
        server
            .metric("labelwarden_store_bytes")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_backup_taken_while_serve_runs_restores_every_running_clock() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let database = sqlite(&live.join("labelwarden.db"));
    let server = start_server(
        policies(dir.path()),
        &database,
        LogNotifier,
        Options::default(),
    )
    .await;
    let labelled = Utc::now();
    for iid in [90, 91] {
        server
            .deliver(
                &format!("bk-{iid}"),
                &issue_event(iid, labelled, labelled, &[], &["priority::highest"], false),
            )
            .await;
    }
    assert!(
        clocks_become(&server, "running", 2, Duration::from_secs(3)).await,
        "both clocks run"
    );

    let backup = dir.path().join("backup.db");
    let back_up = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_labelwarden"))
            .arg("backup")
            .arg(&backup)
            .args(["--database", &database])
            .output()
            .unwrap()
    };
    let taken = back_up();
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(String::from_utf8_lossy(&taken.stdout).contains("backup.intake.db"));
    // A second backup into the same file is refused, not overwritten.
    let again = back_up();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    server.stop().await;

    // Restored as the README says: both files, under serve's names.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&backup, restored.join("labelwarden.db")).unwrap();
    std::fs::copy(
        dir.path().join("backup.intake.db"),
        restored.join("labelwarden.intake.db"),
    )
    .unwrap();
    let database = sqlite(&restored.join("labelwarden.db"));
    let server = start_server(
        policies(dir.path()),
        &database,
        LogNotifier,
        Options::default(),
    )
    .await;
    assert!(
        clocks_become(&server, "breached", 2, Duration::from_secs(10)).await,
        "both restored clocks reach their deadline"
    );
    server.stop().await;
}
