//! A store written by release v7 (SQLite or PostgreSQL) keeps every clock
//! and thread through the upgrade, and follows a project renamed before
//! the store knew its id.

use super::*;

/// Creates, at `url`, the schema of migrations 1 to 7 and records them as
/// applied, as labelwarden's own migration step does.
async fn migrate_to_v7(
    pool: &sqlx::AnyPool,
    table: &str,
    migrations: &[labelwarden::store::migrations::Migration],
) {
    pool.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )))
    .await
    .unwrap();
    for migration in migrations.iter().filter(|m| m.version <= 7) {
        for statement in migration.statements {
            pool.execute(*statement).await.unwrap();
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, 0)"
        )))
        .bind(migration.version)
        .bind(migration.name)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The rows of one section of `fixtures/upgrade/v7.sql`.
fn v7_rows(section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::fixtures().join("upgrade/v7.sql")).unwrap();
    let mut current = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- section: ") {
            current = Some(name.to_owned());
        } else if line.starts_with("INSERT") && current.as_deref() == Some(section) {
            rows.push(line.to_owned());
        }
    }
    assert!(!rows.is_empty(), "section {section}");
    rows
}

async fn insert_rows(pool: &sqlx::AnyPool, section: &str) {
    for row in v7_rows(section) {
        pool.execute(sqlx::AssertSqlSafe(row)).await.unwrap();
    }
}

/// Starts `serve` on a store as release v7 left it (#5's clock running
/// and long past its deadline, with a thread; #6 met), then renames the
/// project and closes #5 under the new path.
async fn upgraded_store_story(url: &str) {
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-fast"),
        url,
        sent.clone(),
        Options::default(),
    )
    .await;
    // The first pass finds #5 due: its breach, late, in its v7 thread.
    assert!(wait_until(Duration::from_secs(20), || !sent.sent().is_empty()).await);
    // v7 stored no project ids: the first delivery after the upgrade (an
    // edit) names project 1 at the path the store knows it by.
    let created: DateTime<Utc> = "2026-11-29T03:03:02.479Z".parse().unwrap();
    let edit = issue_event(5, created, Utc::now(), &[HIGHEST], &[HIGHEST], false);
    assert_eq!(server.deliver("upgrade-edit-5", &edit).await, 200);
    let close = at_path(
        issue_event(5, created, Utc::now(), &[HIGHEST], &[HIGHEST], true),
        "acme/checkout",
    );
    assert_eq!(server.deliver("upgrade-close-5", &close).await, 200);
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let v7_thread = thread("1764000000.000200");
    assert_eq!(
        sent.sent(),
        vec![
            ("acme/backend#5".into(), "breach".into(), v7_thread.clone()),
            ("acme/checkout#5".into(), "resolved".into(), v7_thread),
        ],
        "the v7 clock and thread go on, across the upgrade and the rename"
    );
    let mut clocks = server.stats().await.clocks;
    clocks.sort();
    assert_eq!(
        clocks,
        vec![
            ("fast-critical".to_owned(), "met".to_owned(), 1),
            ("fast-critical".to_owned(), "missed".to_owned(), 1),
        ],
        "#6's clock is still met; #5's missed"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upgraded_sqlite_store_keeps_every_clock_and_thread() {
    let dir = tempfile::tempdir().unwrap();
    upgraded_store_story(&v7_sqlite(dir.path()).await).await;
}

/// A SQLite store in `dir` as release v7 left it; its URL.
async fn v7_sqlite(dir: &Path) -> String {
    sqlx::any::install_default_drivers();
    let main = dir.join("labelwarden.db");
    let intake = dir.join("labelwarden.intake.db");
    let open = |path: &Path| {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        async move { AnyPoolOptions::new().max_connections(1).connect(&url).await }
    };
    let pool = open(&main).await.unwrap();
    migrate_to_v7(
        &pool,
        "labelwarden_migrations",
        labelwarden::store::migrations::MIGRATIONS,
    )
    .await;
    insert_rows(&pool, "main").await;
    pool.close().await;
    let pool = open(&intake).await.unwrap();
    migrate_to_v7(
        &pool,
        "labelwarden_migrations",
        labelwarden::store::migrations::INTAKE_MIGRATIONS,
    )
    .await;
    insert_rows(&pool, "intake").await;
    pool.close().await;
    sqlite(&main)
}

#[tokio::test]
async fn an_upgraded_postgres_store_keeps_every_clock_and_thread() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .unwrap();
    use labelwarden::store::migrations::{
        INTAKE_TABLE, MAIN_TABLE, MIGRATIONS, POSTGRES_INTAKE_MIGRATIONS,
    };
    migrate_to_v7(&pool, MAIN_TABLE, MIGRATIONS).await;
    migrate_to_v7(&pool, INTAKE_TABLE, POSTGRES_INTAKE_MIGRATIONS).await;
    insert_rows(&pool, "main").await;
    insert_rows(&pool, "intake").await;
    // The rows name their `seq`; the sequence goes on after them.
    pool.execute("SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), (SELECT MAX(seq) FROM deliveries))")
        .await
        .unwrap();
    pool.close().await;

    upgraded_store_story(&database.url).await;
    database.drop().await;
}

#[tokio::test]
async fn a_project_renamed_before_its_id_was_known_is_followed_by_reconcile() {
    use common::fake_gitlab::{FakeGitLab, FakeIssue};

    // The v7 store knows acme/backend by its path only; GitLab renamed the
    // project to acme/checkout meanwhile (its old path redirects).
    let dir = tempfile::tempdir().unwrap();
    let url = v7_sqlite(dir.path()).await;
    let gitlab = FakeGitLab::start().await;
    let labelled: DateTime<Utc> = "2026-11-29T03:03:02.479Z".parse().unwrap();
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 5, labelled).add_label(labelled, HIGHEST));
    gitlab
        .gitlab
        .rename_project("acme/backend", "acme/checkout");
    let sent = Threads::default();
    let server = start_server(
        fixture_policies("policies-fast"),
        &url,
        sent.clone(),
        Options {
            reconcile: Some(gitlab.reconcile(Duration::from_secs(3600), vec![])),
            ..Options::default()
        },
    )
    .await;
    assert!(wait_until(Duration::from_secs(20), || !sent.sent().is_empty()).await);
    // Closed in GitLab: the restart's reconcile finds it under the new path.
    gitlab
        .gitlab
        .update("acme/checkout", 5, |issue| issue.close(Utc::now()));
    server.stop().await;
    let server = start_server(
        fixture_policies("policies-fast"),
        &url,
        sent.clone(),
        Options {
            reconcile: Some(gitlab.reconcile(Duration::from_secs(3600), vec![])),
            ..Options::default()
        },
    )
    .await;
    assert!(wait_until(Duration::from_secs(20), || sent.sent().len() >= 2).await);
    server.assert_outbox_empty().await;
    let v7_thread = thread("1764000000.000200");
    let steps: Vec<(String, String, Option<Thread>)> = sent.sent();
    assert_eq!(
        steps,
        vec![
            ("acme/backend#5".into(), "breach".into(), v7_thread.clone()),
            ("acme/checkout#5".into(), "resolved".into(), v7_thread),
        ],
        "found under its new path, in its v7 thread, with no second start"
    );
    server.stop().await;
}
