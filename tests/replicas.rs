//! Two `serve` processes on one PostgreSQL database behind one fake Slack,
//! webhooks spread over both: every step reaches Slack exactly once, on
//! time. Needs `LABELWARDEN_TEST_POSTGRES_URL` (`.ci/run` sets it);
//! skipped otherwise.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::fake_slack::{self, FakeSlack, step_of};
use common::process::{
    Running, free_port, kill, label_spread, serve_replica, terminate, wait_until_up,
};
use common::{HIGHEST, SECRET, issue_event};

const ISSUES: u64 = 500;

/// How long after its step fell due a message may reach the fake Slack
/// without saying it is late. labelwarden says so once it *renders* a
/// message more than the policy's tolerance (150 ms here) and a second
/// after it was due; the fake stamps a message when it gets round to it,
/// and on two busy cores (two replicas, PostgreSQL and this test) the
/// request's trip and the fake's own turn have taken up to a second more.
/// The same bound is the on-time promise of the story without a kill.
/// Two replicas, PostgreSQL and a story on two cores are all the machine
/// has: every story here (the partition one too) takes its turn.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DELIVERY_NOISE: TimeDelta = TimeDelta::seconds(2);

fn replica(database: &str, slack_api: &str, port: u16) -> Running {
    serve_replica(database, slack_api, port, "policies-replicas")
}

/// Each (issue, step) a message says: one for an alert of its own; every
/// issue listed for a group alert's list ("start") or a group's step
/// message; none for a group's parent, which names issues as examples.
fn said(message: &fake_slack::Message) -> Vec<(u64, &'static str)> {
    if message.text.contains("at once, in one thread") {
        return Vec::new();
    }
    let shown = message.shown();
    let step = if shown.contains("(most urgent first):") {
        "start"
    } else {
        step_of(&message.text)
    };
    let issues = common::issues_named(&shown, "acme/backend");
    assert!(!issues.is_empty(), "no issue in {shown}");
    issues.into_iter().map(|iid| (iid, step)).collect()
}

/// Runs the 500-issue story on two replicas; with `kill_after`, the
/// enforcing replica is killed (SIGKILL) that long after the last webhook.
async fn story(kill_after: Option<Duration>) {
    // Four busy processes at once on two cores would measure the machine,
    // not the replicas: one story at a time.
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    let ports = [free_port(), free_port()];
    let mut replicas: Vec<Running> = ports
        .iter()
        .map(|port| replica(&database.url, &slack.api_url, *port))
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }

    // 500 issues labelled, half through each replica, 32 deliveries at a time.
    let labelled = label_spread(&http, &ports, ISSUES, "replica", 32).await;
    if let Some(after) = kill_after {
        tokio::time::sleep(after).await;
        // Kill the replica that is the enforcer, as the `leases` table
        // says (not as it says itself): the other must take over.
        let enforcer = database
            .wait_for_lease_holder("enforcer", Duration::from_secs(10))
            .await
            .expect("one replica holds the enforcer lease");
        let active = replicas
            .iter()
            .position(|r| r.pid() == enforcer)
            .expect("the enforcer is one of the two");
        let log = kill(replicas.remove(active));
        assert!(!log.contains("panicked"), "{log}");
    }

    let expected = ISSUES as usize * 3;
    // Many at once: most are said in group alerts, several to a message.
    let said_so_far = || -> std::collections::BTreeSet<(u64, &str)> {
        slack.slack.messages().iter().flat_map(said).collect()
    };
    // Until every step is said or, in the kill story, every breach is
    // said and nothing more came for a second (a warning may be skipped
    // for its breach, see below).
    let mut stood_still = 0;
    let mut last = 0;
    for _ in 0..400 {
        let pairs = said_so_far();
        if pairs.len() >= expected {
            break;
        }
        stood_still = if pairs.len() == last {
            stood_still + 1
        } else {
            0
        };
        last = pairs.len();
        let every_breach = (1..=ISSUES).all(|iid| pairs.contains(&(iid, "breach")));
        if kill_after.is_some() && every_breach && stood_still >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut seen: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    let mut worst = TimeDelta::zero();
    let mut late_unsaid = Vec::new();
    let messages = slack.slack.messages();
    for (message, (iid, step)) in messages
        .iter()
        .flat_map(|message| said(message).into_iter().map(move |pair| (message, pair)))
    {
        *seen.entry((iid, step)).or_default() += 1;
        let due = labelled[&iid]
            + match step {
                "warning" => TimeDelta::seconds(2),
                "breach" => TimeDelta::seconds(3),
                _ => TimeDelta::zero(),
            };
        let lateness = message.posted_at - due;
        worst = worst.max(lateness);
        if lateness > DELIVERY_NOISE && !message.shown().contains("late") {
            late_unsaid.push((iid, step, lateness.num_milliseconds()));
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    // The store's own account: every step its ledger says fired reached
    // Slack, and nothing reached Slack that did not fire. A step may be
    // missing only if it never fired (the engine skips a warning whose
    // deadline passed before anyone enforced it: the breach says more).
    let fired: std::collections::BTreeSet<(u64, &str)> = database
        .fired_steps()
        .await
        .iter()
        .map(|(iid, step)| (*iid, common::step_kind(step)))
        .collect();
    let said_steps: std::collections::BTreeSet<(u64, &str)> = seen.keys().copied().collect();
    let unsaid: Vec<_> = fired.difference(&said_steps).collect();
    let unfired: Vec<_> = said_steps.difference(&fired).collect();
    assert!(
        unsaid.is_empty(),
        "{} fired steps never reached Slack, e.g. {:?}",
        unsaid.len(),
        &unsaid[..unsaid.len().min(5)]
    );
    assert!(unfired.is_empty(), "said but never fired: {unfired:?}");
    let missing: Vec<(u64, &str)> = (1..=ISSUES)
        .flat_map(|iid| ["start", "warning", "breach"].map(|step| (iid, step)))
        .filter(|key| !seen.contains_key(key))
        .collect();
    if kill_after.is_none() {
        assert!(
            missing.is_empty(),
            "{} never sent, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    assert!(
        missing.iter().all(|(_, step)| *step == "warning"),
        "only a warning may go unfired: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert!(
        late_unsaid.is_empty(),
        "late without saying so: {:?}",
        &late_unsaid[..late_unsaid.len().min(5)]
    );
    if kill_after.is_none() {
        assert!(
            worst <= DELIVERY_NOISE,
            "the latest step came {} ms after it was due",
            worst.num_milliseconds()
        );
    }
    let skipped = (1..=ISSUES)
        .filter(|iid| !seen.contains_key(&(*iid, "warning")))
        .count();
    println!(
        "{} steps exactly once in {} messages ({skipped} warnings skipped for their breach); the latest {} ms after due",
        expected - skipped,
        messages.len(),
        worst.num_milliseconds()
    );

    for replica in replicas {
        let (code, log) = terminate(replica).await;
        assert_eq!(code, Some(0), "{log}");
    }
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_send_every_step_once_and_on_time() {
    story(None).await;
}

/// The replica that is the enforcer dies (SIGKILL) 2.5 s after the last
/// webhook, between the warnings and the last breaches: the survivor takes
/// over its lease and its unfinished claims after 2 s and delivers
/// everything, once, saying what is late (a warning whose deadline passed
/// meanwhile only through its breach, as the engine says it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_s_work_is_taken_over_once() {
    story(Some(Duration::from_millis(2_500))).await;
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and
/// refuse new ones for a while: the database gone, as a network partition
/// or a restart would make it.
#[derive(Clone)]
struct Partition {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Partition {
    async fn start(target: String) -> (Partition, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let partition = Partition {
            down: std::sync::Arc::default(),
            cut: tokio::sync::watch::channel(0).0,
        };
        let handle = partition.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if handle.down.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: connection refused, in effect
                }
                let target = target.clone();
                let mut cut = handle.cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        (partition, port)
    }

    /// Cuts every connection and refuses new ones for `length`.
    async fn outage(&self, length: Duration) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
        tokio::time::sleep(length).await;
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Posts an issue's label as GitLab does: retried while the answer is not
/// 200 (GitLab retries a failed delivery; here, every 100 ms).
async fn deliver_until_stored(http: &reqwest::Client, port: u16, iid: u64) -> (u32, DateTime<Utc>) {
    let at = Utc::now();
    let payload = issue_event(iid, at, at, &[], &[HIGHEST], false).to_string();
    let mut refused = 0;
    loop {
        let answer = http
            .post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
            .header("X-Gitlab-Token", SECRET)
            .header("X-Gitlab-Event", "Issue Hook")
            .header("X-Gitlab-Event-UUID", format!("outage-{iid}"))
            .header("Content-Type", "application/json")
            .body(payload.clone())
            .send()
            .await;
        match answer.map(|a| a.status().as_u16()) {
            Ok(200) => return (refused, at),
            Ok(503) => refused += 1,
            other => panic!("issue {iid}: unexpected answer {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_gone_for_seconds_loses_no_acknowledged_delivery() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let (partition, proxy) = Partition::start("127.0.0.1:5432".to_owned()).await;
    let through_proxy = database.url.replace(":5432/", &format!(":{proxy}/"));
    assert_ne!(through_proxy, database.url, "the URL names port 5432");
    let slack = FakeSlack::start().await;
    let ports = [free_port(), free_port()];
    let replicas: Vec<Running> = ports
        .iter()
        .map(|port| replica(&through_proxy, &slack.api_url, *port))
        .collect();
    let http = labelwarden::http_client::builder().build().unwrap();
    for port in ports {
        wait_until_up(&http, &format!("http://127.0.0.1:{port}")).await;
    }

    // 200 issues over about 4 seconds; the database is gone for 3 of them.
    let outage = {
        let partition = partition.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            partition.outage(Duration::from_secs(3)).await;
        })
    };
    let mut posting = Vec::new();
    for iid in 1..=200u64 {
        let client = http.clone();
        let port = ports[(iid % 2) as usize];
        posting.push(tokio::spawn(async move {
            deliver_until_stored(&client, port, iid).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        if iid == 100 {
            // In the middle of the outage: the replicas say they are not ready.
            let ready = http
                .get(format!("http://127.0.0.1:{}/readyz", ports[0]))
                .send()
                .await
                .unwrap();
            assert_eq!(ready.status(), 503, "the store does not answer");
            // A replica that cannot renew the enforcer lease stops acting
            // as the enforcer at once.
            tokio::time::sleep(Duration::from_secs(1)).await;
            for port in ports {
                let metrics =
                    common::process::text_at(&http, &format!("http://127.0.0.1:{port}/metrics"))
                        .await;
                assert!(
                    metrics.contains("labelwarden_enforcer_active 0"),
                    "no enforcer while the lease cannot be renewed: {metrics}"
                );
            }
        }
    }
    let mut refused = 0;
    for posted in posting {
        refused += posted.await.unwrap().0;
    }
    outage.await.unwrap();
    assert!(
        refused > 0,
        "some deliveries were refused (503) while the database was gone"
    );

    let starts = || {
        let mut starts: BTreeMap<u64, usize> = BTreeMap::new();
        for message in slack.slack.messages() {
            for (iid, step) in said(&message) {
                if step == "start" {
                    *starts.entry(iid).or_default() += 1;
                }
            }
        }
        starts
    };
    // Up to 20 s: a busy CI machine takes longer than the 5 s it takes alone.
    for _ in 0..400 {
        if starts().len() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let starts = starts();
    let unapplied: Vec<u64> = (1..=200).filter(|iid| !starts.contains_key(iid)).collect();
    assert!(
        unapplied.is_empty(),
        "every acknowledged delivery was applied; {} were not, e.g. {:?}",
        unapplied.len(),
        &unapplied[..unapplied.len().min(10)]
    );
    assert!(starts.values().all(|n| *n == 1), "each start once");
    for port in ports {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "recovered without a restart");
    }
    let mut logs = String::new();
    for replica in replicas {
        let (code, log) = terminate(replica).await;
        assert_eq!(code, Some(0), "{log}");
        logs.push_str(&log);
    }
    // Holding the lease again after the error is a takeover: the time
    // nobody enforced is recorded as a downtime.
    assert!(
        logs.contains("cannot renew the enforcer lease"),
        "the lost renewal is said: {logs}"
    );
    assert!(
        logs.contains("labelwarden was not running (no enforcer)"),
        "the regain records a downtime: {logs}"
    );
    database.drop().await;
}
