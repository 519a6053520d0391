//! `serve` keeps the issue's ledger note too (see [`crate::gitlab::markers`]):
//! every step it carries out, Slack-only ones included, is listed there
//! with its channel and thread, as `audit --notify` lists its own. A
//! scheduled `audit --notify` beside `serve` then sends nothing `serve`
//! sent, replies in `serve`'s threads, and takes over only what `serve`
//! missed while it was down.
//!
//! Writes are batched: markers wait here a moment, and each issue with new
//! ones gets one read and one edit of its note, so a storm of steps is not
//! a storm of GitLab writes. A marker that cannot be written is kept and
//! tried again; one lost (a crash before the flush) costs at most a
//! duplicate message from a later audit, never a missed one.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::actions::{IssueLedger, IssueWriter};
use super::markers::{Marker, ledger_note};
use crate::issue::IssueRef;

/// How long markers wait to be written together.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Issues written at once.
const CONCURRENCY: usize = 4;

enum Command {
    Record(IssueRef, Marker),
    Flush(oneshot::Sender<()>),
}

/// Queues markers for the issues' ledger notes; a task writes them.
#[derive(Clone)]
pub struct LedgerWriter {
    commands: mpsc::UnboundedSender<Command>,
}

impl LedgerWriter {
    /// Starts the task that writes through `writer`.
    pub fn start(writer: IssueWriter) -> Self {
        let (commands, received) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, received));
        LedgerWriter { commands }
    }

    /// Lists `marker` on `issue`'s ledger note soon.
    pub fn record(&self, issue: IssueRef, marker: Marker) {
        if self.commands.send(Command::Record(issue, marker)).is_err() {
            tracing::warn!("the ledger writer has stopped; a step is not listed on its issue");
        }
    }

    /// Writes everything queued, now, and waits for it (at shutdown).
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

async fn run(writer: IssueWriter, mut received: mpsc::UnboundedReceiver<Command>) {
    let mut pending: BTreeMap<IssueRef, Vec<Marker>> = BTreeMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            command = received.recv() => match command {
                Some(Command::Record(issue, marker)) => pending.entry(issue).or_default().push(marker),
                Some(Command::Flush(done)) => {
                    while let Ok(Command::Record(issue, marker)) = received.try_recv() {
                        pending.entry(issue).or_default().push(marker);
                    }
                    flush(&writer, &mut pending).await;
                    let _ = done.send(());
                }
                None => {
                    flush(&writer, &mut pending).await;
                    return;
                }
            },
            _ = tick.tick() => flush(&writer, &mut pending).await,
        }
    }
}

/// Writes each issue's new markers; what fails stays for the next flush.
async fn flush(writer: &IssueWriter, pending: &mut BTreeMap<IssueRef, Vec<Marker>>) {
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    let failed: Vec<(IssueRef, Vec<Marker>)> = futures_util::stream::iter(batch)
        .map(|(issue, markers)| async move {
            match write(writer, &issue, &markers).await {
                Ok(()) => None,
                Err(error) => {
                    tracing::warn!(issue = %issue, error = %error, "cannot list steps on the issue's ledger note; trying again");
                    metrics::counter!("labelwarden_ledger_write_failures_total").increment(1);
                    Some((issue, markers))
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    for (issue, markers) in failed {
        pending.entry(issue).or_default().extend(markers);
    }
}

/// One issue: its note read, the markers it lacks added, one edit (or the
/// note created). Safe to repeat: a marker listed already is not again.
async fn write(
    writer: &IssueWriter,
    issue: &IssueRef,
    markers: &[Marker],
) -> Result<(), super::GitLabError> {
    let notes = writer.notes(issue).await?;
    let mut ledger = IssueLedger::from_notes(&notes);
    let before = ledger.markers.len();
    let mut changed = false;
    for marker in markers {
        let known = ledger
            .markers
            .iter_mut()
            .find(|m| m.policy == marker.policy && m.firing == marker.firing);
        match known {
            None => ledger.markers.push(marker.clone()),
            // Said in a digest after it was recorded: now it has a thread.
            Some(known) if known.thread.is_none() && marker.thread.is_some() => {
                known.channel = marker.channel.clone();
                known.thread = marker.thread.clone();
                changed = true;
            }
            Some(_) => {}
        }
    }
    if ledger.markers.len() == before && !changed {
        return Ok(());
    }
    let body = ledger_note(&ledger.markers);
    match ledger.ledger_note {
        Some(note) => writer.edit_note(issue, note, &body).await,
        None => writer.create_note(issue, &body, true).await.map(drop),
    }
}
