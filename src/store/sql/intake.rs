//! Webhook deliveries as they arrive: recorded once by their key (a
//! redelivery is acknowledged and ignored) and handed to the enforcer in
//! the order they came, past the intake cursor.

use super::*;

pub(super) async fn record_delivery(
    store: &SqlStore,
    delivery: &Delivery,
) -> Result<Recorded, StoreError> {
    let stopped = || StoreError::Unavailable("the delivery writer has stopped".into());
    let (reply, outcome) = oneshot::channel();
    store
        .deliveries
        .send((delivery.clone(), reply))
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

/// The most deliveries one group commit writes.
pub(super) const DELIVERY_BATCH: usize = 512;

/// Writes queued deliveries, a batch per transaction, until the store is dropped.
pub(super) async fn write_deliveries(
    writer: AnyPool,
    backend: Backend,
    mut queue: mpsc::Receiver<PendingDelivery>,
) {
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while queue.recv_many(&mut batch, DELIVERY_BATCH).await > 0 {
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
