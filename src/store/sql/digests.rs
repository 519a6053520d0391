//! Digests: each channel's storm windows, the issues they admitted, and
//! the outbox row that posts (then updates) a window's digest once it
//! settles. Written by the enforcer in its pass's transaction; read by
//! the outbox as it sends.

use super::*;
use crate::notify::digest::{
    DIGEST_STEP, Digest, DigestItem, DigestKey, DigestKind, DigestProgress,
};
use crate::store::{DigestEntry, OpenDigest};

/// How long a digest waits for more issues after the last one joined
/// before it is posted (never past its window's end): a backlog read in a
/// few seconds is said in one message, not in one per enforcer pass.
pub const DIGEST_SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

/// How long a digest is kept after its window closed: long enough for its
/// messages to outlast any Slack outage, short enough not to pile up.
const DIGESTS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Writes a pass's admissions, and makes sure each digest that listed
/// someone new has one unclaimed outbox row, due when it settles.
pub(super) async fn write(
    tx: &mut Transaction<'_, Any>,
    entries: &[&DigestEntry],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
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
    sqlx::query("DELETE FROM digests WHERE closes_at < $1")
        .bind(forgotten)
        .execute(&mut **tx)
        .await?;
    let mut touched: Vec<(&DigestKey, DateTime<Utc>)> = Vec::new();
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
            "INSERT INTO digest_members (kind, channel, policy, opened_at, seq, project, iid, notice)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(key.kind.as_str())
        .bind(key.channel.as_str())
        .bind(key.policy.0.as_str())
        .bind(millis(key.opened_at))
        .bind(i64::from(entry.seq))
        .bind(entry.issue.project.0.as_str())
        .bind(entry.issue.iid.0 as i64)
        .bind(notice)
        .execute(&mut **tx)
        .await?;
        if entry.notice.is_some() && !touched.iter().any(|(known, _)| *known == key) {
            touched.push((key, entry.closes_at));
        }
    }
    for (key, closes_at) in touched {
        let send_at = millis((now + DIGEST_SETTLE).min(closes_at.max(now)));
        let issue = key.outbox_issue();
        let project = issue.project.0.as_str();
        let iid = issue.iid.0 as i64;
        // A row nobody claimed yet waits a little longer for more issues.
        let postponed = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1
             WHERE project = $2 AND iid = $3 AND policy = $4
               AND sent_at IS NULL AND next_attempt_at IS NOT NULL AND claims = 0",
        )
        .bind(send_at)
        .bind(project)
        .bind(iid)
        .bind(key.policy.0.as_str())
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
            (SELECT COUNT(*) FROM digest_members m
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
         ORDER BY seq",
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
    Ok(Some(Digest {
        key: key.clone(),
        items,
        progress,
    }))
}

pub(super) async fn record_digest(
    store: &SqlStore,
    key: &DigestKey,
    progress: &DigestProgress,
) -> Result<(), StoreError> {
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
    .execute(&store.writer)
    .await?;
    Ok(())
}
