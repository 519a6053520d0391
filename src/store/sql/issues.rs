//! Issues and their clocks: what the enforcer loads for an evaluation
//! (facts, timeline, ledger, acknowledgements, statuses, carried starts),
//! what it commits (all of it with the outbox, in one transaction), and
//! what is due, live or counted.

use super::*;

pub(super) async fn load_issues(
    store: &SqlStore,
    issues: &[IssueRef],
) -> Result<Vec<Loaded>, StoreError> {
    let mut loaded = vec![Loaded::default(); issues.len()];
    let mut position = std::collections::HashMap::with_capacity(issues.len());
    for (index, issue) in issues.iter().enumerate() {
        position.insert((issue.project.0.clone(), issue.iid.0 as i64), index);
    }
    let slot = |row: &AnyRow| -> Result<usize, StoreError> {
        let key: (String, i64) = (row.try_get("project")?, row.try_get("iid")?);
        position.get(&key).copied().ok_or(StoreError::Corrupt {
            what: "issue lookup",
            message: format!("unexpected row for {}#{}", key.0, key.1),
        })
    };
    for chunk in issues.chunks(ROWS_PER_STATEMENT) {
        let among = parameters(store.backend, chunk.len(), 2);
        let bind_all = |query| bind_issues(query, chunk);
        let rows = bind_all(multi_row(format!(
            "SELECT t.project, t.iid, t.facts, t.title, t.url, t.updated_at, t.issue_id, t.moved_to_id,
                    t.duplicated_to_id, t.duplicate_of_project, t.duplicate_of_iid
             FROM {}",
            join_values("issues", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            let facts: IssueFacts = serde_json::from_str(&row.try_get::<String, _>("facts")?)
                .map_err(corrupt("issue facts"))?;
            let id = |column: &str| -> Result<Option<u64>, sqlx::Error> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(|id| id as u64))
            };
            loaded[slot(row)?].record = Some(IssueRecord {
                facts,
                title: row.try_get("title")?,
                url: row.try_get("url")?,
                updated_at: instant(row.try_get("updated_at")?),
                events: Vec::new(),
                ids: GitLabIds {
                    project_id: None,
                    issue_id: id("issue_id")?,
                    moved_to_id: id("moved_to_id")?,
                    duplicated_to_id: id("duplicated_to_id")?,
                    duplicate_of: id("duplicate_of_project")?.zip(id("duplicate_of_iid")?),
                },
            });
        }
        let rows = bind_all(multi_row(format!(
            "SELECT t.project, t.iid, t.policy, t.started_at FROM {}",
            join_values("carried_starts", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            loaded[slot(row)?].carried.push((
                PolicyName(row.try_get("policy")?),
                instant(row.try_get("started_at")?),
            ));
        }
        let rows = bind_all(multi_row(format!(
            "SELECT t.project, t.iid, t.at, t.kind, t.label FROM {}",
            join_values("issue_events", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            let event = TimedEvent {
                at: instant(row.try_get("at")?),
                event: event_from_columns(
                    &row.try_get::<String, _>("kind")?,
                    row.try_get("label")?,
                )?,
            };
            if let Some(record) = &mut loaded[slot(row)?].record {
                record.events.push(event);
            }
        }
        let rows = bind_all(multi_row(format!(
            "SELECT t.project, t.iid, t.policy, t.step, t.cycle, t.occurrence FROM {}",
            join_values("ledger", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            let firing = firing_from(row)?;
            loaded[slot(row)?]
                .ledger
                .push((PolicyName(row.try_get("policy")?), firing));
        }
        let rows = bind_all(multi_row(format!(
            "SELECT DISTINCT t.project, t.iid, t.policy, t.cycle FROM {}",
            join_values("acknowledgements", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            let cycle = row.try_get::<i64, _>("cycle")? as u32;
            loaded[slot(row)?]
                .acknowledged
                .push((PolicyName(row.try_get("policy")?), cycle));
        }
        let rows = bind_all(multi_row(format!(
            "SELECT t.project, t.iid, t.policy, t.status FROM {}",
            join_values("clocks", ISSUE_KEY, &among)
        )))
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            loaded[slot(row)?]
                .statuses
                .push((PolicyName(row.try_get("policy")?), row.try_get("status")?));
        }
    }
    for (issue, key, cycle) in digests::memberships(store, issues).await? {
        if let Some(index) = position.get(&(issue.project.0, issue.iid.0 as i64)) {
            loaded[*index].digests.push((key, cycle));
        }
    }
    Ok(loaded)
}

pub(super) async fn commit(
    store: &SqlStore,
    commits: &[IssueCommit],
    handled: &[Handled],
    fence: Option<&LeaseFence>,
) -> Result<CommitOutcome, StoreError> {
    let mut tx = super::fence::fenced_transaction(store, fence).await?;
    let (newly_fired, new_firings) = write_commits(&mut tx, store.backend, commits).await?;
    for commit in commits.iter().filter(|c| c.became_confidential) {
        confidential::redact_waiting(&mut tx, &commit.facts.reference).await?;
    }
    for carried in commits.iter().flat_map(|c| &c.carried) {
        identity::carry_start(&mut tx, carried, Utc::now()).await?;
    }
    // What a digest lists or says is written with its firing, once: an
    // evaluation that lost the race for a firing (two enforcers for a
    // moment, a retried pass) adds nothing to any digest.
    let new = |notice: &Notice| {
        let firing = &notice.firing;
        new_firings.contains(&(
            notice.issue.project.0.clone(),
            notice.issue.iid.0 as i64,
            notice.policy.0.clone(),
            firing.step.0.clone(),
            i64::from(firing.cycle),
            i64::from(firing.occurrence),
        ))
    };
    let admitted: Vec<_> = commits
        .iter()
        .flat_map(|c| &c.digests)
        .filter(|entry| entry.notice.as_ref().is_none_or(new))
        .collect();
    let digest_notices: Vec<_> = commits
        .iter()
        .flat_map(|c| &c.digest_notices)
        .filter(|(_, notice)| new(notice))
        .collect();
    if let Some(now) = commits.iter().map(|c| c.now).max() {
        digests::write(&mut tx, &admitted, &digest_notices, now).await?;
    }
    for delivery in handled {
        if let Some(error) = &delivery.rejected {
            sqlx::query(
                "INSERT INTO rejected_deliveries (key, seq, error, rejected_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&delivery.key)
            .bind(delivery.seq)
            .bind(error)
            .bind(millis(Utc::now()))
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(last) = handled.iter().map(|d| d.seq).max() {
        sqlx::query(
            "INSERT INTO intake_cursor (id, seq) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET seq =
                CASE WHEN excluded.seq > intake_cursor.seq THEN excluded.seq ELSE intake_cursor.seq END",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(CommitOutcome { newly_fired })
}

pub(super) async fn due_issues(
    store: &SqlStore,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<IssueRef>, StoreError> {
    let rows = sqlx::query(
        "SELECT project, iid, MIN(next_wake) AS wake FROM clocks
         WHERE next_wake IS NOT NULL AND next_wake <= $1
         GROUP BY project, iid ORDER BY wake LIMIT $2",
    )
    .bind(millis(now))
    .bind(i64::from(limit))
    .fetch_all(&store.readers)
    .await?;
    rows.iter().map(|row| Ok(issue_from(row)?)).collect()
}

pub(super) async fn known_projects(
    store: &SqlStore,
) -> Result<Vec<(String, Option<u64>)>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT i.project, p.project_id FROM issues i
         LEFT JOIN projects p ON p.path = i.project ORDER BY i.project",
    )
    .fetch_all(&store.readers)
    .await?;
    rows.iter()
        .map(|row| {
            let id: Option<i64> = row.try_get(1)?;
            Ok((row.try_get::<String, _>(0)?, id.map(|id| id as u64)))
        })
        .collect()
}

pub(super) async fn live_issues(
    store: &SqlStore,
    project: &str,
) -> Result<Vec<IssueRef>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT project, iid FROM clocks
         WHERE project = $1 AND status IN ('running', 'paused', 'breached')
         ORDER BY iid",
    )
    .bind(project)
    .fetch_all(&store.readers)
    .await?;
    rows.iter().map(|row| Ok(issue_from(row)?)).collect()
}

pub(super) async fn earliest_wake(store: &SqlStore) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = sqlx::query("SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL")
        .fetch_one(&store.readers)
        .await?;
    Ok(row.try_get::<Option<i64>, _>(0)?.map(instant))
}

pub(super) async fn stats(store: &SqlStore, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
    let clocks =
        sqlx::query("SELECT policy, status, COUNT(*) AS n FROM clocks GROUP BY policy, status")
            .fetch_all(&store.readers)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("policy")?,
                    row.try_get("status")?,
                    row.try_get("n")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let outbox = sqlx::query(
        "SELECT
            COUNT(CASE WHEN sent_at IS NULL AND next_attempt_at IS NOT NULL THEN 1 END) AS pending,
            COUNT(CASE WHEN sent_at IS NULL AND next_attempt_at IS NULL THEN 1 END) AS failed
         FROM outbox",
    )
    .fetch_one(&store.readers)
    .await?;
    let cursor = intake::intake_cursor(store).await?;
    let deliveries = sqlx::query("SELECT COUNT(*) FROM deliveries WHERE seq > $1")
        .bind(cursor)
        .fetch_one(&store.intake_readers)
        .await?;
    let due = sqlx::query(
        "SELECT MIN(next_wake) FROM clocks WHERE next_wake IS NOT NULL AND next_wake <= $1",
    )
    .bind(millis(now))
    .fetch_one(&store.readers)
    .await?;
    Ok(StoreStats {
        clocks,
        outbox_pending: outbox.try_get("pending")?,
        outbox_failed: outbox.try_get("failed")?,
        deliveries_pending: deliveries.try_get(0)?,
        oldest_due_wake: due.try_get::<Option<i64>, _>(0)?.map(instant),
    })
}

/// Writes evaluations inside `tx` with a few multi-row statements (one
/// round trip each, whatever the number of issues); returns how many fired
/// steps were new. Each issue appears at most once in `commits`.
/// Writes the evaluations; returns how many notices were new, and which
/// firings were (a firing another writer recorded first is not).
async fn write_commits(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    commits: &[IssueCommit],
) -> Result<(usize, std::collections::HashSet<FiringKey>), StoreError> {
    debug_assert!(
        {
            let mut issues: Vec<_> = commits.iter().map(|c| &c.facts.reference).collect();
            issues.sort();
            issues.windows(2).all(|w| w[0] != w[1])
        },
        "one commit per issue and pass"
    );
    let facts = commits
        .iter()
        .map(|c| serde_json::to_string(&c.facts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt("issue facts"))?;

    for chunk in commits
        .iter()
        .zip(&facts)
        .collect::<Vec<_>>()
        .chunks(ROWS_PER_STATEMENT)
    {
        let sql = format!(
            "INSERT INTO issues (project, iid, facts, title, url, updated_at, issue_id, moved_to_id,
                                 duplicated_to_id, duplicate_of_project, duplicate_of_iid, open) VALUES {}
             ON CONFLICT (project, iid) DO UPDATE SET
                facts = excluded.facts, title = excluded.title, url = excluded.url, updated_at = excluded.updated_at,
                open = excluded.open,
                issue_id = COALESCE(excluded.issue_id, issues.issue_id),
                moved_to_id = COALESCE(excluded.moved_to_id, issues.moved_to_id),
                duplicated_to_id = COALESCE(excluded.duplicated_to_id, issues.duplicated_to_id),
                duplicate_of_project = COALESCE(excluded.duplicate_of_project, issues.duplicate_of_project),
                duplicate_of_iid = COALESCE(excluded.duplicate_of_iid, issues.duplicate_of_iid)
             WHERE excluded.updated_at >= issues.updated_at",
            parameters(backend, chunk.len(), 12)
        );
        let mut query = multi_row(sql);
        for (commit, facts) in chunk {
            let (project, iid) = issue_key(commit);
            let id = |id: Option<u64>| id.map(|id| id as i64);
            query = query
                .bind(project)
                .bind(iid)
                .bind(facts.as_str())
                .bind(commit.title.as_str())
                .bind(commit.url.as_str())
                .bind(millis(commit.updated_at))
                .bind(id(commit.ids.issue_id))
                .bind(id(commit.ids.moved_to_id))
                .bind(id(commit.ids.duplicated_to_id))
                .bind(id(commit.ids.duplicate_of.map(|(project, _)| project)))
                .bind(id(commit.ids.duplicate_of.map(|(_, iid)| iid)))
                .bind(i64::from(
                    commit.facts.state == crate::issue::IssueState::Opened,
                ));
        }
        query.execute(&mut **tx).await?;
    }

    let events: Vec<_> = commits
        .iter()
        .flat_map(|c| c.new_events.iter().map(move |e| (issue_key(c), e)))
        .collect();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO issue_events (project, iid, at, kind, label) VALUES {} ON CONFLICT DO NOTHING",
            parameters(backend, chunk.len(), 5)
        );
        let mut query = multi_row(sql);
        for ((project, iid), event) in chunk {
            let (kind, label) = event_columns(&event.event);
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(millis(event.at))
                .bind(kind)
                .bind(label);
        }
        query.execute(&mut **tx).await?;
    }

    let (untracked, tracked): (Vec<_>, Vec<_>) = commits
        .iter()
        .flat_map(|c| {
            c.clocks
                .iter()
                .map(move |clock| (issue_key(c), c.now, clock))
        })
        .partition(|(_, _, clock)| clock.status == "not_matching" && clock.next_wake.is_none());
    for chunk in tracked.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO clocks (project, iid, policy, status, next_wake, updated_at) VALUES {}
             ON CONFLICT (project, iid, policy) DO UPDATE SET
                status = excluded.status, next_wake = excluded.next_wake, updated_at = excluded.updated_at",
            parameters(backend, chunk.len(), 6)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, clock) in chunk {
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(clock.policy.0.as_str())
                .bind(clock.status)
                .bind(clock.next_wake.map(millis))
                .bind(millis(*now));
        }
        query.execute(&mut **tx).await?;
    }
    // Only clocks that ever ran, or wait for an event still ahead, are
    // tracked: a policy that no longer matches (or never did) has no row.
    for chunk in untracked.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM clocks WHERE (project, iid, policy) IN (VALUES {})",
            parameters(backend, chunk.len(), 3)
        );
        let mut query = multi_row(sql);
        for ((project, iid), _, clock) in chunk {
            query = query
                .bind(*project)
                .bind(*iid)
                .bind(clock.policy.0.as_str());
        }
        query.execute(&mut **tx).await?;
    }

    let fired: Vec<_> = commits
        .iter()
        .flat_map(|c| {
            c.fired
                .iter()
                .enumerate()
                .map(move |(position, f)| (issue_key(c), c.now, position, f))
        })
        .collect();
    let mut new_firings: std::collections::HashSet<FiringKey> = std::collections::HashSet::new();
    for chunk in fired.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO ledger (project, iid, policy, step, cycle, occurrence, fired_at) VALUES {}
             ON CONFLICT DO NOTHING RETURNING project, iid, policy, step, cycle, occurrence",
            parameters(backend, chunk.len(), 7)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, _, fired) in chunk {
            query = bind_firing(query, project, *iid, &fired.policy.0, &fired.notice.firing)
                .bind(millis(*now));
        }
        for row in query.fetch_all(&mut **tx).await? {
            new_firings.insert((
                row.try_get("project")?,
                row.try_get("iid")?,
                row.try_get("policy")?,
                row.try_get("step")?,
                row.try_get("cycle")?,
                row.try_get("occurrence")?,
            ));
        }
    }
    // A firing another evaluation already recorded has its notice in the
    // outbox. One with nothing left to send (adopted, said in a digest)
    // has none: the enforcer lists it on the issue's ledger note, if
    // `serve` keeps one.
    let notices = fired
        .iter()
        .filter(|(_, _, _, fired)| fired.notice.has_actions())
        .filter(|((project, iid), _, _, fired)| {
            let firing = &fired.notice.firing;
            new_firings.contains(&(
                (*project).to_owned(),
                *iid,
                fired.policy.0.clone(),
                firing.step.0.clone(),
                i64::from(firing.cycle),
                i64::from(firing.occurrence),
            ))
        })
        .map(|(key, now, position, fired)| {
            serde_json::to_string(&fired.notice)
                .map(|notice| (*key, *now, *position, *fired, notice))
                .map_err(corrupt("notice"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in notices.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO outbox (project, iid, policy, step, cycle, occurrence, created_at, position, notice, next_attempt_at, channel)
             VALUES {} ON CONFLICT DO NOTHING",
            parameters(backend, chunk.len(), 11)
        );
        let mut query = multi_row(sql);
        for ((project, iid), now, position, fired, notice) in chunk {
            query = bind_firing(query, project, *iid, &fired.policy.0, &fired.notice.firing)
                .bind(millis(*now))
                .bind(*position as i64)
                .bind(notice.as_str())
                .bind(millis(*now))
                .bind(
                    fired
                        .notice
                        .slack
                        .as_ref()
                        .map(|slack| slack.channel.as_str()),
                );
        }
        query.execute(&mut **tx).await?;
    }

    Ok((notices.len(), new_firings))
}
