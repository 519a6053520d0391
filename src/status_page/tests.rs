use chrono::TimeZone;

use super::*;
use crate::issue::IssueRef;
use crate::policy::PolicyName;
use crate::store::AlertThread;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

/// Issue `n` of acme/backend under `critical`, started `started` hours ago.
fn row(n: u64, status: SlaStatus, started: i64) -> Row {
    let started_at = now() - hours(started);
    Row {
        issue: format!("acme/backend#{n}"),
        title: format!("Checkout <b>broken</b> {n}"),
        url: format!("https://gitlab.example.com/acme/backend/-/issues/{n}"),
        confidential: false,
        assignees: vec!["jdoe".into()],
        policy: "critical".into(),
        level: if status.is_breach() {
            Level::Breach
        } else {
            Level::Ok
        },
        status,
        target: hours(24),
        started_at: Some(started_at),
        deadline: Some(started_at + hours(24)),
        cycle: 1,
        acknowledged: None,
        calendar: None,
    }
}

fn running(n: u64, started: i64) -> Row {
    row(
        n,
        SlaStatus::Running {
            deadline: now() + hours(24 - started),
            remaining: hours(24 - started),
        },
        started,
    )
}

fn breached(n: u64, started: i64) -> Row {
    row(
        n,
        SlaStatus::Breached {
            deadline: now() - hours(started - 24),
            overdue: hours(started - 24),
        },
        started,
    )
}

fn met(n: u64, started: i64, took: i64) -> Row {
    row(
        n,
        SlaStatus::Met {
            stopped_at: now() - hours(started) + hours(took),
            took: hours(took),
        },
        started,
    )
}

fn paused(n: u64, remaining: i64) -> Row {
    let mut row = row(
        n,
        SlaStatus::Paused {
            reason: crate::clock::PauseReason::Label(0),
            since: now() - hours(1),
            remaining: hours(remaining),
        },
        30,
    );
    row.deadline = None;
    row
}

fn board(rows: Vec<Row>) -> Board {
    Board {
        now: now(),
        rows,
        threads: Vec::new(),
    }
}

fn page(board: &Board) -> String {
    render(board, &PageSettings::default())
}

/// The part of the page from `from` to the next `</table>`.
fn table<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in\n{page}"));
    let end = page[start..].find("</table>").unwrap() + start;
    &page[start..end]
}

/// The issue references in `html`, in order.
fn references(html: &str) -> Vec<&str> {
    html.match_indices(">acme/backend#")
        .map(|(at, _)| {
            let rest = &html[at + 1..];
            &rest[..rest.find('<').unwrap()]
        })
        .collect()
}

#[test]
fn open_clocks_come_by_time_left_most_overdue_first_and_ended_ones_are_not_open() {
    let board = board(vec![
        running(1, 2),   // 22h left
        breached(2, 26), // 2h overdue
        running(3, 20),  // 4h left
        breached(4, 30), // 6h overdue
        paused(5, 10),   // 10h left, held
        met(6, 10, 3),
    ]);
    let page = page(&board);
    assert_eq!(
        references(table(&page, "open")),
        [
            "acme/backend#4",
            "acme/backend#2",
            "acme/backend#3",
            "acme/backend#5",
            "acme/backend#1"
        ]
    );
    assert!(page.contains("2 breached"), "{page}");
    assert!(page.contains("2 running"), "{page}");
    assert!(page.contains("1 paused"), "{page}");
}

#[test]
fn breached_and_paused_clocks_are_marked_and_only_wall_clock_ones_count_down() {
    let mut on_calendar = running(3, 20);
    on_calendar.calendar = Some("office".into());
    let board = board(vec![
        breached(2, 26),
        paused(5, 10),
        running(1, 2),
        on_calendar,
    ]);
    let open = page(&board);
    let open = table(&open, "open");
    let rows: Vec<&str> = open.split("<tr class=").skip(1).collect();
    let of = |n: u64| {
        *rows
            .iter()
            .find(|r| r.contains(&format!(">acme/backend#{n}<")))
            .unwrap()
    };
    assert!(
        of(2).contains("class=\"mark breached\">Breached<"),
        "{}",
        of(2)
    );
    assert!(of(2).contains("data-deadline=\"2026-11-25T10:00:00Z\">2h overdue<"));
    assert!(of(5).contains("class=\"mark paused\">Paused<"), "{}", of(5));
    assert!(of(5).contains("paused, 10h left"));
    assert!(
        !of(5).contains("data-deadline"),
        "a paused clock stands still"
    );
    assert!(of(1).contains("data-deadline=\"2026-11-26T10:00:00Z\">22h left<"));
    assert!(!of(1).contains("class=\"mark"));
    assert!(of(3).contains("4h left (working time)"));
    assert!(
        !of(3).contains("data-deadline"),
        "working time does not count down in wall-clock seconds"
    );
}

#[test]
fn without_script_the_page_still_says_time_left_deadline_in_utc_and_reloads_itself() {
    let page = page(&board(vec![running(1, 2)]));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
    assert!(page.contains(">22h left<"));
    assert!(page.contains(
        "<time datetime=\"2026-11-26T10:00:00Z\" data-local>2026-11-26 10:00 UTC</time>"
    ));
    let script = &page[page.find("<script>").unwrap()..page.find("</script>").unwrap()];
    assert!(
        script.lines().count() < 25,
        "a few lines of script at most:\n{script}"
    );
}

#[test]
fn a_confidential_issue_keeps_its_reference_link_and_clock_but_not_its_title() {
    let mut secret = breached(7, 26);
    secret.confidential = true;
    secret.title = "Customer Alice's card numbers leak".into();
    let mut ended = met(8, 30, 3);
    ended.confidential = true;
    ended.title = "Another secret".into();
    let page = page(&board(vec![secret, ended, running(1, 2)]));
    assert!(!page.contains("Alice"), "{page}");
    assert!(!page.contains("Another secret"), "{page}");
    assert!(page.contains(">acme/backend#7<"));
    assert!(page.contains("https://gitlab.example.com/acme/backend/-/issues/7"));
    assert!(page.contains(CONFIDENTIAL_TITLE));
    assert!(page.contains("2h overdue"));
    // Others' titles are there, escaped.
    assert!(
        page.contains("Checkout &#60;b&#62;broken&#60;/b&#62; 1"),
        "{page}"
    );
    assert!(!page.contains("<b>broken"));
}

#[test]
fn who_acknowledged_and_when_and_the_slack_threads_are_shown_with_links_once_the_workspace_is_known()
 {
    let mut acknowledged = breached(2, 26);
    acknowledged.acknowledged = Some(("@jdoe".into(), now() - hours(3)));
    let cycle = |n: u64| AlertThread {
        issue: IssueRef::parse(&format!("acme/backend#{n}")).unwrap(),
        policy: PolicyName("critical".into()),
        cycle: 1,
    };
    let board = Board {
        threads: vec![
            CycleThread {
                cycle: cycle(2),
                channel: "incidents".into(),
                channel_id: "C0INCIDENT".into(),
                ts: "1764000000.123456".into(),
            },
            CycleThread {
                cycle: cycle(2),
                channel: "leads".into(),
                channel_id: "C0LEADS".into(),
                ts: "1764000001.000100".into(),
            },
        ],
        ..board(vec![acknowledged, running(1, 2)])
    };
    let linked = render(
        &board,
        &PageSettings {
            slack_workspace: Some("https://acme.slack.com/".into()),
            ..PageSettings::default()
        },
    );
    assert!(linked.contains(
        "@jdoe, <time datetime=\"2026-11-25T09:00:00Z\" data-local>2026-11-25 09:00 UTC</time>"
    ));
    assert!(linked.contains(
        "<a href=\"https://acme.slack.com/archives/C0INCIDENT/p1764000000123456\">#incidents</a>"
    ));
    assert!(linked.contains(
        "<a href=\"https://acme.slack.com/archives/C0LEADS/p1764000001000100\">#leads</a>"
    ));
    let first = &linked[linked.find(">acme/backend#1<").unwrap()..];
    assert!(first[..first.find("</tr>").unwrap()].contains("not yet"));

    let unlinked = page(&board);
    assert!(unlinked.contains("#incidents"));
    assert!(!unlinked.contains("archives/"));
}

#[test]
fn the_last_week_lists_breaches_and_resolutions_newest_first_and_nothing_older() {
    let board = board(vec![
        breached(2, 26),     // deadline passed 2h ago
        met(3, 30, 3),       // met 27h ago
        met(4, 24 * 9, 2),   // met 9 days ago: not this week
        breached(5, 24 * 9), // deadline passed 8 days ago, still open
    ]);
    let recent = page(&board);
    let recent = table(&recent, "recent");
    assert_eq!(
        references(recent),
        ["acme/backend#2", "acme/backend#3"],
        "{recent}"
    );
    assert!(recent.contains("deadline passed"));
    assert!(recent.contains("met in 3h"));
}

#[test]
fn each_policy_shows_its_share_met_over_the_window_with_a_bar_and_charts() {
    let mut missed = row(
        9,
        SlaStatus::Missed {
            deadline: now() - hours(48),
            stopped_at: now() - hours(46),
            late_by: hours(2),
        },
        72,
    );
    missed.acknowledged = Some(("@jdoe".into(), now() - hours(71)));
    let board = board(vec![
        met(3, 30, 3),
        met(4, 48, 10),
        missed,
        met(5, 24 * 40, 2), // ended 40 days ago: outside the window
        running(1, 2),
    ]);
    let page = page(&board);
    let policy = &page[page.find("id=\"policy-critical\"").unwrap()..];
    assert!(policy.contains("1 open"), "{policy}");
    assert!(
        policy.contains("met 2, missed 1: <strong>67%</strong>"),
        "{policy}"
    );
    assert!(policy.contains("aria-label=\"67% met\""));
    assert!(policy.contains("class=\"met-bar\" x=\"0\" y=\"0\" width=\"67\""));
    assert!(policy.contains("Time to resolve (3 clocks)"), "{policy}");
    assert!(
        policy.contains("Time to acknowledge (1 clocks)"),
        "{policy}"
    );
}

#[test]
fn an_empty_store_says_so_in_each_part() {
    let page = page(&board(Vec::new()));
    assert!(page.contains("No clock is running."));
    assert!(page.contains("None."));
    assert!(page.contains("No clock ran in that time."));
    assert!(page.contains("0 breached"));
}

#[test]
fn a_permalink_is_the_workspace_the_channel_and_the_ts_without_its_dot() {
    assert_eq!(
        permalink("https://acme.slack.com/", "C0ALERTS", "1700000000.123456"),
        "https://acme.slack.com/archives/C0ALERTS/p1700000000123456"
    );
    assert_eq!(
        permalink("https://acme.slack.com", "C0ALERTS", "1700000000.000001"),
        "https://acme.slack.com/archives/C0ALERTS/p1700000000000001"
    );
}
