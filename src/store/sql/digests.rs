//! Digests: each channel's storm windows, the issues they admitted, the
//! later notices of those listed, and the outbox row that posts (then
//! updates and continues) a window's digest once it settles. Written by the enforcer in its pass's transaction; read by
//! the outbox as it sends.

use super::*;
use crate::notice::Thread;
use crate::notice::digest::{
    DIGEST_STEP, Digest, DigestItem, DigestKey, DigestKind, DigestNotice, DigestProgress,
};
use crate::store::{DigestEntry, OpenDigest};

/// How long a digest waits for more issues after the last one joined
/// before it is posted (never past its window's end): a backlog read in a
/// few seconds is said in one message, not in one per enforcer pass.
pub const DIGEST_SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

/// How long a digest's message waits at most for more to join, from when
/// its outbox row was written: a steady trickle still goes out.
const MOST_GATHER: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// How long a digest waits for more after something joined, and at most
/// from its row's writing: [`DIGEST_SETTLE`] and [`MOST_GATHER`], or a
/// twentieth and a fifth of the SLA target when that is less (a policy
/// with a 3-second target cannot wait 3 seconds for company). An unknown
/// target (0) bounds nothing.
fn gathering(target: chrono::TimeDelta) -> (chrono::TimeDelta, chrono::TimeDelta) {
    if target <= chrono::TimeDelta::zero() {
        return (DIGEST_SETTLE, MOST_GATHER);
    }
    (DIGEST_SETTLE.min(target / 20), MOST_GATHER.min(target / 5))
}

/// How long a digest is kept after its window closed: long enough for its
/// messages to outlast any Slack outage, short enough not to pile up.
const DIGESTS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Writes a pass's admissions and its members' later notices, and makes
/// sure each digest with something new to say has one unclaimed outbox
/// row, due when it settles.
pub(super) async fn write(
    tx: &mut Transaction<'_, Any>,
    entries: &[&DigestEntry],
    notices: &[&(DigestKey, Notice)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if entries.is_empty() && notices.is_empty() {
        return Ok(());
    }
    // A new storm is the moment to let the long-closed ones go.
    let forgotten = millis(now - DIGESTS_KEPT);
    sqlx::query(
        "DELETE FROM digest_members WHERE (kind, channel, policy, opened_at) IN (
            SELECT kind, channel, policy, opened_at FROM digests WHERE closes_at < $1)",
    )
    .bind(forgotten)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM digest_notices WHERE (kind, channel, policy, opened_at) IN (
            SELECT kind, channel, policy, opened_at FROM digests WHERE closes_at < $1)",
    )
    .bind(forgotten)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM digests WHERE closes_at < $1")
        .bind(forgotten)
        .execute(&mut **tx)
        .await?;
    // Each digest with something new, and the shortest SLA target among
    // what joined: a digest waits for more in proportion to it.
    let mut touched: Vec<(&DigestKey, chrono::TimeDelta)> = Vec::new();
    let mut touch = |key, notice: &Notice| {
        let target = notice.sla.target();
        match touched.iter_mut().find(|(known, _)| *known == key) {
            Some((_, shortest)) => *shortest = (*shortest).min(target),
            None => touched.push((key, target)),
        }
    };
    for entry in entries {
        let key = &entry.key;
        sqlx::query(
            "INSERT INTO digests (kind, channel, policy, opened_at, closes_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(key.kind.as_str())
        .bind(key.channel.as_str())
        .bind(key.policy.0.as_str())
        .bind(millis(key.opened_at))
        .bind(millis(entry.closes_at))
        .execute(&mut **tx)
        .await?;
        let notice = entry
            .notice
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(corrupt("digest notice"))?;
        sqlx::query(
            "INSERT INTO digest_members (kind, channel, policy, opened_at, seq, project, iid, cycle, notice)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(key.kind.as_str())
        .bind(key.channel.as_str())
        .bind(key.policy.0.as_str())
        .bind(millis(key.opened_at))
        .bind(i64::from(entry.seq))
        .bind(entry.issue.project.0.as_str())
        .bind(entry.issue.iid.0 as i64)
        .bind(i64::from(entry.cycle))
        .bind(notice)
        .execute(&mut **tx)
        .await?;
        if let Some(listed) = &entry.notice {
            touch(key, listed);
        }
    }
    for (key, notice) in notices {
        let json = serde_json::to_string(notice).map_err(corrupt("digest notice"))?;
        sqlx::query(
            "INSERT INTO digest_notices (kind, channel, policy, opened_at, project, iid, cycle, step,
                occurrence, joined_at, notice)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(key.kind.as_str())
        .bind(key.channel.as_str())
        .bind(key.policy.0.as_str())
        .bind(millis(key.opened_at))
        .bind(notice.issue.project.0.as_str())
        .bind(notice.issue.iid.0 as i64)
        .bind(i64::from(notice.firing.cycle))
        .bind(notice.firing.step.0.as_str())
        .bind(i64::from(notice.firing.occurrence))
        .bind(millis(now))
        .bind(json)
        .execute(&mut **tx)
        .await?;
        touch(key, notice);
    }
    for (key, target) in touched {
        let (settle, most) = gathering(target);
        let send_at = millis(now + settle);
        let issue = key.outbox_issue();
        let project = issue.project.0.as_str();
        let iid = issue.iid.0 as i64;
        // A row nobody claimed yet waits a little longer for more, up to
        // a limit from when it was written.
        let postponed = sqlx::query(
            "UPDATE outbox SET next_attempt_at =
                CASE WHEN $1 < created_at + $5 THEN $1 ELSE created_at + $5 END
             WHERE project = $2 AND iid = $3 AND policy = $4
               AND sent_at IS NULL AND next_attempt_at IS NOT NULL AND claims = 0",
        )
        .bind(send_at)
        .bind(project)
        .bind(iid)
        .bind(key.policy.0.as_str())
        .bind(most.num_milliseconds())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if postponed > 0 {
            continue;
        }
        // Otherwise (none yet, or one being sent) one more follows.
        let occurrence: i64 = sqlx::query(
            "SELECT COALESCE(MAX(occurrence), 0) + 1 FROM outbox
             WHERE project = $1 AND iid = $2 AND policy = $3",
        )
        .bind(project)
        .bind(iid)
        .bind(key.policy.0.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let notice = serde_json::to_string(&key.outbox_notice(occurrence as u32, now))
            .map_err(corrupt("digest notice"))?;
        sqlx::query(
            "INSERT INTO outbox (project, iid, policy, step, cycle, occurrence, created_at, position, notice, next_attempt_at, channel)
             VALUES ($1, $2, $3, $4, 1, $5, $6, 0, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(project)
        .bind(iid)
        .bind(key.policy.0.as_str())
        .bind(DIGEST_STEP)
        .bind(occurrence)
        .bind(millis(now))
        .bind(notice)
        .bind(send_at)
        .bind(key.channel.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn open_digests(
    store: &SqlStore,
    now: DateTime<Utc>,
) -> Result<Vec<OpenDigest>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.kind, d.channel, d.policy, d.opened_at, d.closes_at,
            (SELECT COALESCE(MAX(m.seq), 0) FROM digest_members m
             WHERE m.kind = d.kind AND m.channel = d.channel AND m.policy = d.policy
               AND m.opened_at = d.opened_at) AS members
         FROM digests d WHERE d.closes_at > $1",
    )
    .bind(millis(now))
    .fetch_all(&store.writer)
    .await?;
    let mut open = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let Some(kind) = DigestKind::parse(&kind) else {
            // Written by a later version: not this one's to continue.
            continue;
        };
        open.push(OpenDigest {
            key: DigestKey {
                kind,
                channel: row.try_get("channel")?,
                policy: PolicyName(row.try_get("policy")?),
                opened_at: instant(row.try_get("opened_at")?),
            },
            closes_at: instant(row.try_get("closes_at")?),
            members: row.try_get::<i64, _>("members")? as u32,
        });
    }
    Ok(open)
}

pub(super) async fn digest(
    store: &SqlStore,
    key: &DigestKey,
) -> Result<Option<Digest>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT summarised, batch_from, batch_through, batch_posted FROM digests
         WHERE kind = $1 AND channel = $2 AND policy = $3 AND opened_at = $4",
    )
    .bind(key.kind.as_str())
    .bind(key.channel.as_str())
    .bind(key.policy.0.as_str())
    .bind(millis(key.opened_at))
    .fetch_optional(&store.writer)
    .await?
    else {
        return Ok(None);
    };
    let number = |column: &str| -> Result<u32, StoreError> {
        Ok(row.try_get::<i64, _>(column)?.max(0) as u32)
    };
    let progress = DigestProgress {
        summarised: number("summarised")?,
        batch_from: number("batch_from")?,
        batch_through: number("batch_through")?,
        batch_posted: number("batch_posted")?,
    };
    let rows = sqlx::query(
        "SELECT seq, notice FROM digest_members
         WHERE kind = $1 AND channel = $2 AND policy = $3 AND opened_at = $4
           AND notice IS NOT NULL
         ORDER BY seq, project, iid, cycle",
    )
    .bind(key.kind.as_str())
    .bind(key.channel.as_str())
    .bind(key.policy.0.as_str())
    .bind(millis(key.opened_at))
    .fetch_all(&store.writer)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(DigestItem {
            seq: row.try_get::<i64, _>("seq")? as u32,
            notice: serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("digest notice"))?,
        });
    }
    let rows = sqlx::query(
        "SELECT notice, posted_at, planned FROM digest_notices
         WHERE kind = $1 AND channel = $2 AND policy = $3 AND opened_at = $4
         ORDER BY joined_at, project, iid, step, occurrence",
    )
    .bind(key.kind.as_str())
    .bind(key.channel.as_str())
    .bind(key.policy.0.as_str())
    .bind(millis(key.opened_at))
    .fetch_all(&store.writer)
    .await?;
    let mut notices = Vec::with_capacity(rows.len());
    for row in &rows {
        notices.push(DigestNotice {
            notice: serde_json::from_str(&row.try_get::<String, _>("notice")?)
                .map_err(corrupt("digest notice"))?,
            posted: row.try_get::<Option<i64>, _>("posted_at")?.is_some(),
            planned: row.try_get("planned")?,
        });
    }
    Ok(Some(Digest {
        key: key.clone(),
        items,
        progress,
        notices,
    }))
}

/// One member's notice in a digest, bound from `$2` on by [`bind_notice`].
const ONE_NOTICE: &str = "kind = $2 AND channel = $3 AND policy = $4 AND opened_at = $5
    AND project = $6 AND iid = $7 AND cycle = $8 AND step = $9 AND occurrence = $10";

fn bind_notice<'q>(
    query: SqlQuery<'q>,
    key: &'q DigestKey,
    issue: &'q IssueRef,
    firing: &'q Firing,
) -> SqlQuery<'q> {
    query
        .bind(key.kind.as_str())
        .bind(key.channel.as_str())
        .bind(key.policy.0.as_str())
        .bind(millis(key.opened_at))
        .bind(issue.project.0.as_str())
        .bind(issue.iid.0 as i64)
        .bind(i64::from(firing.cycle))
        .bind(firing.step.0.as_str())
        .bind(i64::from(firing.occurrence))
}

pub(super) async fn record_digest(
    store: &SqlStore,
    key: &DigestKey,
    progress: &DigestProgress,
    posted: &[(IssueRef, Firing)],
    thread: Option<&Thread>,
    claim: Option<(&OutboxKey, &ClaimToken)>,
) -> Result<(), StoreError> {
    let mut tx = store.writer.begin().await?;
    if let Some((row, token)) = claim {
        super::fence::check_claim(&mut tx, store.backend, row, token).await?;
        // The summary's thread goes with the progress that says it is
        // out: a later list part is never posted without it.
        if let Some(thread) = thread {
            let at = millis(Utc::now());
            super::outbox::remember_threads(&mut tx, store.backend, &[(row, thread, at)]).await?;
        }
    }
    for (issue, firing) in posted {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE digest_notices SET posted_at = $1 WHERE {ONE_NOTICE}"
        )))
        .bind(millis(Utc::now()));
        bind_notice(query, key, issue, firing)
            .execute(&mut *tx)
            .await?;
    }
    // One claimant sends a digest at a time: its progress is the truth.
    sqlx::query(
        "UPDATE digests SET summarised = $1, batch_from = $2, batch_through = $3, batch_posted = $4
         WHERE kind = $5 AND channel = $6 AND policy = $7 AND opened_at = $8",
    )
    .bind(i64::from(progress.summarised))
    .bind(i64::from(progress.batch_from))
    .bind(i64::from(progress.batch_through))
    .bind(i64::from(progress.batch_posted))
    .bind(key.kind.as_str())
    .bind(key.channel.as_str())
    .bind(key.policy.0.as_str())
    .bind(millis(key.opened_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Chooses `notices` (not posted yet) for the message `message`, before
/// it is posted.
pub(super) async fn plan_digest_message(
    store: &SqlStore,
    key: &DigestKey,
    message: &str,
    notices: &[(IssueRef, Firing)],
    claim: Option<(&OutboxKey, &ClaimToken)>,
) -> Result<(), StoreError> {
    let mut tx = store.writer.begin().await?;
    if let Some((row, token)) = claim {
        super::fence::check_claim(&mut tx, store.backend, row, token).await?;
    }
    for (issue, firing) in notices {
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE digest_notices SET planned = $1 WHERE {ONE_NOTICE} AND posted_at IS NULL"
        )))
        .bind(message);
        bind_notice(query, key, issue, firing)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The listed memberships of these issues' cycles in digests, as
/// (project, iid, key, cycle).
pub(super) async fn memberships(
    store: &SqlStore,
    issues: &[IssueRef],
) -> Result<Vec<(IssueRef, DigestKey, u32)>, StoreError> {
    let mut found = Vec::new();
    for chunk in issues.chunks(ROWS_PER_STATEMENT) {
        let rows = bind_issues(
            multi_row(format!(
                "SELECT t.kind, t.channel, t.policy, t.opened_at, t.project, t.iid, t.cycle
                 FROM {} WHERE t.notice IS NOT NULL",
                join_values(
                    "digest_members",
                    ISSUE_KEY,
                    &parameters(store.backend, chunk.len(), 2)
                )
            )),
            chunk,
        )
        .fetch_all(&store.readers)
        .await?;
        for row in &rows {
            let Some(kind) = DigestKind::parse(&row.try_get::<String, _>("kind")?) else {
                continue;
            };
            found.push((
                IssueRef {
                    project: ProjectPath(row.try_get("project")?),
                    iid: IssueIid(row.try_get::<i64, _>("iid")? as u64),
                },
                DigestKey {
                    kind,
                    channel: row.try_get("channel")?,
                    policy: PolicyName(row.try_get("policy")?),
                    opened_at: instant(row.try_get("opened_at")?),
                },
                row.try_get::<i64, _>("cycle")? as u32,
            ));
        }
    }
    Ok(found)
}
