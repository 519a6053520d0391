//! `labelwarden drill` against the fake Slack (and a fake GitLab that must
//! hear nothing): the alert, marked as a drill, goes to the policy's team
//! channel; the on-call secondary is tagged when nobody acknowledges; a
//! person's 👀 and ✅ are read from `reactions.get`; the summary is printed
//! and posted in the thread; the metrics file marks every series as a
//! drill's.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_gitlab::{self, FakeGitLab};
use common::fake_slack::{self, FakeSlack, TOKEN};

const RESPONDER: &str = "U0RESPONDR";
const SECONDARIES: [&str; 3] = ["<@U0ADA0001>", "<@U0GRACE01>", "<@U0LINUS01>"];

/// The fakes a drill runs against (a fake GitLab too, which must hear
/// nothing), and a folder for its metrics file.
struct Fakes {
    slack: fake_slack::Running,
    gitlab: fake_gitlab::Running,
    dir: tempfile::TempDir,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            slack: FakeSlack::start().await,
            gitlab: FakeGitLab::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn metrics(&self) -> PathBuf {
        self.dir.path().join("drill.prom")
    }

    /// `labelwarden drill` of `policy` at 600×, reading reactions every 200 ms.
    fn drill(&self, policy: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_labelwarden"))
            .args([
                "drill", "--policy", policy, "--speed", "600", "--poll", "200ms",
            ])
            .arg("--metrics-file")
            .arg(self.metrics())
            .env(
                "LABELWARDEN_POLICIES",
                common::fixtures().join("policies-drill"),
            )
            .env("SLACK_BOT_TOKEN", TOKEN)
            .env("SLACK_API_URL", &self.slack.api_url)
            .env("LABELWARDEN_SLACK_PER_CHANNEL_PER_SECOND", "20")
            // The webhook channel no drill here uses: its URL is not needed.
            .env_remove("LABELWARDEN_TEST_DRILL_ANNOUNCE_WEBHOOK")
            // Were it to write to GitLab, it would write here.
            .env("GITLAB_URL", &self.gitlab.url)
            .env("GITLAB_TOKEN", fake_gitlab::TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs")
    }

    /// The drill's alert, once it is posted.
    async fn alert(&self) -> fake_slack::Message {
        message_where(&self.slack.slack, |m| m.thread_ts.is_none())
            .await
            .expect("the drill's alert is posted")
    }
}

/// Waits for the drill to end (at most `limit`): its exit code, stdout
/// and stderr.
async fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String, String) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        // The fake Slack answers on this runtime: never block it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        common::text(&output.stdout),
        common::text(&output.stderr),
    )
}

async fn message_where(
    slack: &FakeSlack,
    what: impl Fn(&fake_slack::Message) -> bool,
) -> Option<fake_slack::Message> {
    common::wait_until(Duration::from_secs(15), || {
        slack.messages().iter().any(&what)
    })
    .await;
    slack.messages().into_iter().find(|m| what(m))
}

#[tokio::test]
async fn a_drill_escalates_to_the_secondary_reads_eyes_and_a_tick_and_posts_its_summary() {
    let fakes = Fakes::start().await;
    let (slack, gitlab, metrics) = (&fakes.slack, &fakes.gitlab, fakes.metrics());
    let child = fakes.drill("critical-bug-24h");

    let alert = fakes.alert().await;
    assert_eq!(alert.channel, "C0ALERTS1", "in the policy's team channel");
    assert!(
        alert.text.contains("DRILL"),
        "marked as a drill: {}",
        alert.text
    );
    assert!(
        alert.text.contains("drill/critical-bug-24h#"),
        "{}",
        alert.text
    );
    assert!(
        alert.text.contains("resolve within 2m 24s"),
        "24h at 600× is 2m 24s: {}",
        alert.text
    );
    assert!(alert.text.contains("<@U0CONTACT1>"), "tags as for real");

    // Nobody acknowledged within 30m of the policy's clock (3 s): the
    // secondary is tagged in the thread.
    let escalation = message_where(&slack.slack, |m| {
        m.thread_ts.as_deref() == Some(alert.ts.as_str())
            && m.text.contains("Nobody has acknowledged")
    })
    .await
    .expect("the escalation reaches the thread");
    assert!(
        SECONDARIES.iter().any(|id| escalation.text.contains(id)),
        "the on-call secondary is tagged: {}",
        escalation.text
    );

    slack.slack.reply(RESPONDER, &alert, "on it");
    slack.slack.person_reacts(&alert, "eyes", RESPONDER);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    slack
        .slack
        .person_reacts(&alert, "white_check_mark", RESPONDER);

    let (code, stdout, stderr) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "acknowledged: exit 0\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Acknowledged by {RESPONDER} after")),
        "{stdout}"
    );
    assert!(stdout.contains("On-call secondary reached"), "{stdout}");
    assert!(
        stdout.contains(&format!("resolved by {RESPONDER}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Replied in the thread: {RESPONDER}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("`breach`: add missed::SLA; comment"),
        "the GitLab parts left undone are listed: {stdout}"
    );

    let messages = slack.slack.messages();
    let summary = messages
        .iter()
        .find(|m| m.text.starts_with("Drill summary"))
        .expect("the summary is posted");
    assert_eq!(
        summary.thread_ts.as_deref(),
        Some(alert.ts.as_str()),
        "in the thread"
    );
    assert!(
        summary.shown().contains(&format!("<@{RESPONDER}>")),
        "{}",
        summary.shown()
    );
    let parent = messages.iter().find(|m| m.ts == alert.ts).unwrap();
    assert!(
        parent.reactions.contains(&"white_check_mark".to_owned()),
        "the resolution step reacts on the alert"
    );
    assert!(
        messages.iter().all(|m| m.channel == "C0ALERTS1"),
        "nothing in the users' channel: {:?}",
        messages.iter().map(|m| &m.channel).collect::<Vec<_>>()
    );
    assert!(
        gitlab.gitlab.requests().is_empty(),
        "nothing is written to (or read from) GitLab: {:?}",
        gitlab.gitlab.requests()
    );

    let metrics = std::fs::read_to_string(&metrics).expect("the metrics file is written");
    assert!(
        metrics.contains(
            r#"labelwarden_drill_secondary_reached{policy="critical-bug-24h",drill="true"} 1"#
        ) || metrics.contains(
            r#"labelwarden_drill_secondary_reached{drill="true",policy="critical-bug-24h"} 1"#
        ),
        "{metrics}"
    );
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("labelwarden_"))
        .collect();
    assert!(!series.is_empty());
    assert!(
        series.iter().all(|l| l.contains(r#"drill="true""#)),
        "every series is marked as a drill's: {metrics}"
    );
    assert!(
        metrics.contains("labelwarden_time_to_acknowledge_seconds"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_drill_nobody_acknowledges_breaches_says_so_and_fails() {
    let fakes = Fakes::start().await;
    let (slack, gitlab, metrics) = (&fakes.slack, &fakes.gitlab, fakes.metrics());
    // 2h at 600× is 12 s.
    let child = fakes.drill("outage-2h");
    let (code, stdout, stderr) = finish(child, Duration::from_secs(40)).await;
    assert_eq!(
        code,
        Some(1),
        "nobody acknowledged: exit 1\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("the deadline passed and the breach was said"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Nobody acknowledged the alert."),
        "{stdout}"
    );
    assert!(stdout.contains("On-call secondary reached"), "{stdout}");
    let messages = slack.slack.messages();
    let alert = messages.iter().find(|m| m.thread_ts.is_none()).unwrap();
    let in_thread: Vec<&str> = messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(alert.ts.as_str()))
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(
        in_thread.len(),
        3,
        "escalation, breach, summary: {in_thread:#?}"
    );
    assert!(in_thread[1].contains("SLA breached"), "{in_thread:#?}");
    assert!(in_thread[2].starts_with("Drill summary"), "{in_thread:#?}");
    assert!(gitlab.gitlab.requests().is_empty());
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(metrics.contains(r#"outcome="breached""#), "{metrics}");
}

#[test]
fn a_drill_refuses_what_it_cannot_rehearse() {
    let policies = common::fixtures().join("policies-drill");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_labelwarden"))
            .arg("drill")
            .args(args)
            .env("LABELWARDEN_POLICIES", &policies)
            .env("SLACK_BOT_TOKEN", TOKEN)
            .env("SLACK_API_URL", "http://127.0.0.1:9/api")
            .output()
            .unwrap()
    };
    let unknown = run(&["--policy", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        common::text(&unknown.stderr).contains(
            "no policy named `nope`; the policies are: `critical-bug-24h`, `outage-2h`, `announced`"
        ),
        "{}",
        common::text(&unknown.stderr)
    );
    let too_fast = run(&["--policy", "outage-2h", "--speed", "1000"]);
    assert_eq!(too_fast.status.code(), Some(2));
    assert!(
        common::text(&too_fast.stderr).contains("lasts 7s: too short to react in"),
        "{}",
        common::text(&too_fast.stderr)
    );
}

#[tokio::test]
async fn a_cancelled_drill_still_posts_its_summary_and_says_it_was_stopped() {
    let fakes = Fakes::start().await;
    let (slack, metrics) = (&fakes.slack, fakes.metrics());
    let child = fakes.drill("critical-bug-24h");
    let alert = fakes.alert().await;
    slack.slack.person_reacts(&alert, "eyes", RESPONDER);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // A cancelled CI job: SIGTERM.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stdout, stderr) = finish(child, Duration::from_secs(10)).await;
    assert_eq!(
        code,
        Some(0),
        "acknowledged before it stopped\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("stopped before it was resolved or breached"),
        "{stdout}"
    );
    let summary = slack
        .slack
        .messages()
        .into_iter()
        .find(|m| m.text.starts_with("Drill summary"))
        .expect("the summary is posted");
    assert_eq!(summary.thread_ts.as_deref(), Some(alert.ts.as_str()));
    assert!(metrics.exists(), "the metrics file is written");
}

#[tokio::test]
async fn a_drill_whose_alert_slack_refuses_says_why_and_exits_2() {
    let fakes = Fakes::start().await;
    let slack = &fakes.slack;
    slack.slack.refuse("C0ALERTS1", "not_in_channel");
    let child = fakes.drill("critical-bug-24h");
    let (code, stdout, stderr) = finish(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Slack refused the drill's alert") && stderr.contains("not_in_channel"),
        "{stderr}"
    );
    assert!(slack.slack.messages().is_empty());
}
