//! Webhook deliveries as they arrive: recorded once by their key (a
//! redelivery is acknowledged and ignored) and handed to the enforcer in
//! the order they came, past the intake cursor.

use super::*;

pub(super) async fn record_delivery(
    store: &SqlStore,
    delivery: &Delivery,
) -> Result<Recorded, StoreError> {
    ask_writer(store, |reply| IntakeWork::Record(delivery.clone(), reply)).await
}

/// Hands the intake writer `work` and waits for its answer.
async fn ask_writer<T>(
    store: &SqlStore,
    work: impl FnOnce(oneshot::Sender<Result<T, String>>) -> IntakeWork,
) -> Result<T, StoreError> {
    let stopped = || StoreError::Unavailable("the delivery writer has stopped".into());
    let (reply, outcome) = oneshot::channel();
    store
        .deliveries
        .send(work(reply))
        .await
        .map_err(|_| stopped())?;
    outcome
        .await
        .map_err(|_| stopped())?
        .map_err(StoreError::Unavailable)
}

pub(super) async fn pending_deliveries(
    store: &SqlStore,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let cursor = intake_cursor(store).await?;
    let rows = sqlx::query(
        "SELECT seq, key, kind, received_at, payload FROM deliveries WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(cursor)
    .bind(i64::from(limit))
    .fetch_all(&store.intake_readers)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                seq: row.try_get("seq")?,
                key: row.try_get("key")?,
                kind: row.try_get("kind")?,
                received_at: instant(row.try_get("received_at")?),
                payload: row.try_get("payload")?,
            })
        })
        .collect()
}

/// A delivery waiting to be written, and who waits for the outcome.
pub(super) type PendingDelivery = (Delivery, oneshot::Sender<Result<Recorded, String>>);

/// What the intake writer does: it is the one writer of the intake file,
/// so that letting old deliveries go never makes a webhook wait on a
/// second writer's lock.
pub(super) enum IntakeWork {
    Record(Delivery, oneshot::Sender<Result<Recorded, String>>),
    Prune(Prune, oneshot::Sender<Result<u64, String>>),
}

/// Deliveries to let go: applied ones (`seq` up to `applied_through`)
/// lose their payload at once, and their key once received before
/// `keys_before`; at most `batch` rows each.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prune {
    pub applied_through: i64,
    pub keys_before: DateTime<Utc>,
    pub batch: u32,
}

/// The most deliveries one group commit writes.
pub(super) const DELIVERY_BATCH: usize = 512;

/// Writes queued deliveries, a batch per transaction, until the store is
/// dropped; prunes between batches when asked.
pub(super) async fn write_deliveries(
    writer: AnyPool,
    backend: Backend,
    mut queue: mpsc::Receiver<IntakeWork>,
) {
    let mut work = Vec::with_capacity(DELIVERY_BATCH);
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while queue.recv_many(&mut work, DELIVERY_BATCH).await > 0 {
        for item in work.drain(..) {
            match item {
                IntakeWork::Record(delivery, reply) => batch.push((delivery, reply)),
                IntakeWork::Prune(prune, reply) => {
                    let pruned = prune_deliveries(&writer, backend, prune).await;
                    let _ = reply.send(pruned.map_err(|e| e.to_string()));
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        match insert_deliveries(&writer, backend, &batch).await {
            Ok(recorded) => {
                for ((_, reply), outcome) in batch.drain(..).zip(recorded) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Inserts a batch with one statement per [`ROWS_PER_STATEMENT`] rows; the
/// keys the database returns are the new ones, the rest were seen before
/// (earlier, or twice in this batch).
async fn insert_deliveries(
    writer: &AnyPool,
    backend: Backend,
    batch: &[PendingDelivery],
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut tx = writer.begin().await?;
    if backend == Backend::Postgres {
        // Several replicas insert at once: without this, a lower `seq` could
        // commit after a higher one and be passed over by the intake cursor.
        // SQLite has one writer already.
        tx.execute("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let mut inserted = std::collections::HashSet::with_capacity(batch.len());
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO deliveries (key, kind, received_at, payload) VALUES {}
             ON CONFLICT (key) DO NOTHING RETURNING key",
            parameters(backend, chunk.len(), 4)
        );
        let mut query = multi_row(sql);
        for (delivery, _) in chunk {
            query = query
                .bind(delivery.key.as_str())
                .bind(delivery.kind.as_str())
                .bind(millis(delivery.received_at))
                .bind(delivery.payload.as_str());
        }
        for row in query.fetch_all(&mut *tx).await? {
            inserted.insert(row.try_get::<String, _>(0)?);
        }
    }
    tx.commit().await?;
    // A key sent twice in one batch is new only the first time.
    Ok(batch
        .iter()
        .map(|(delivery, _)| {
            if inserted.remove(&delivery.key) {
                Recorded::New
            } else {
                Recorded::Duplicate
            }
        })
        .collect())
}

/// How far intake has been processed: the last handled delivery's `seq`.
pub(super) async fn intake_cursor(store: &SqlStore) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM intake_cursor")
        .fetch_one(&store.readers)
        .await?;
    Ok(row.try_get(0)?)
}

/// Lets applied deliveries go (see [`Prune`]): the number of rows changed.
async fn prune_deliveries(
    writer: &AnyPool,
    backend: Backend,
    prune: Prune,
) -> Result<u64, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let deleted = sqlx::query(
        "DELETE FROM deliveries WHERE seq IN (
            SELECT seq FROM deliveries WHERE seq <= $1 AND received_at < $2 ORDER BY seq LIMIT $3)",
    )
    .bind(prune.applied_through)
    .bind(millis(prune.keys_before))
    .bind(i64::from(prune.batch))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let emptied = sqlx::query(
        "UPDATE deliveries SET payload = '' WHERE seq IN (
            SELECT seq FROM deliveries WHERE seq <= $1 AND payload <> '' ORDER BY seq LIMIT $2)",
    )
    .bind(prune.applied_through)
    .bind(i64::from(prune.batch))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if backend == Backend::Sqlite {
        // The file gives back what the batch freed (a batch's pages at most).
        writer
            .execute(sqlx::AssertSqlSafe(format!(
                "PRAGMA incremental_vacuum({})",
                prune.batch
            )))
            .await?;
    }
    Ok(deleted + emptied)
}

/// Asks the intake writer to prune (see [`Prune`]).
pub(super) async fn prune(store: &SqlStore, prune: Prune) -> Result<u64, StoreError> {
    ask_writer(store, |reply| IntakeWork::Prune(prune, reply)).await
}
