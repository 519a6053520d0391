use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::clock::SlaStatus;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn row(n: usize, status: SlaStatus, level: Level, confidential: bool) -> Row {
    Row {
        issue: format!("acme/backend#{n}"),
        title: format!("Checkout <b>broken</b> {n}"),
        url: format!("https://gitlab.example.com/acme/backend/-/issues/{n}"),
        confidential,
        assignees: vec!["jdoe".into()],
        policy: "critical".into(),
        status,
        level,
        target: TimeDelta::hours(24),
        started_at: Some(now() - TimeDelta::hours(30)),
        deadline: Some(now() - TimeDelta::hours(6)),
        cycle: 1,
        acknowledged: Some(("U0JDOE".into(), now() - TimeDelta::hours(29))),
        calendar: None,
    }
}

fn context() -> Context<'static> {
    Context {
        watchdog: None,
        scope: "project acme/backend",
        now: now(),
        issues_read: 3,
    }
}

fn rows() -> Vec<Row> {
    vec![
        row(
            1,
            SlaStatus::Breached {
                deadline: now() - TimeDelta::hours(6),
                overdue: TimeDelta::hours(6),
            },
            Level::Breach,
            false,
        ),
        row(
            2,
            SlaStatus::Met {
                stopped_at: now() - TimeDelta::hours(20),
                took: TimeDelta::hours(10),
            },
            Level::Ok,
            true,
        ),
        row(
            3,
            SlaStatus::Met {
                stopped_at: now() - TimeDelta::hours(26),
                took: TimeDelta::hours(3),
            },
            Level::Ok,
            false,
        ),
    ]
}

#[test]
fn the_page_lists_breaches_charts_each_policy_and_escapes_every_value() {
    let page = html(&rows(), &context());
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("<title>labelwarden audit: project acme/backend</title>"));
    let urgent = &page[page.find("<table id=\"urgent\">").unwrap()..];
    let urgent = &urgent[..urgent.find("</table>").unwrap()];
    assert!(
        urgent.contains("acme/backend#1</a>") && !urgent.contains("acme/backend#3"),
        "{urgent}"
    );
    assert!(
        page.contains("Checkout &#60;b&#62;broken&#60;/b&#62; 1")
            || page.contains("Checkout &lt;b&gt;broken&lt;/b&gt; 1"),
        "titles are escaped: {page}"
    );
    assert!(!page.contains("<b>broken"), "{page}");
    // Two resolved clocks: one in 1-4h, one in 8-16h.
    assert!(page.contains("Time to resolve (2 clocks)"), "{page}");
    assert!(page.contains("<title>1-4h: 1</title>") && page.contains("<title>8-16h: 1</title>"));
    assert!(page.contains("<strong>100%</strong> in time"), "{page}");
    assert!(page.contains("U0JDOE at 2026-11-24 07:00 UTC"), "{page}");
}

#[test]
fn a_confidential_title_and_any_outside_request_stay_out() {
    let page = html(&rows(), &context());
    assert!(!page.contains("broken</b> 2") && !page.contains("broken&lt;/b&gt; 2"));
    assert!(
        page.contains("acme/backend#2</a></td><td>(confidential)"),
        "{page}"
    );
    for outside in ["<script", "<link", "<img", "src=", "@import", "url("] {
        assert!(!page.contains(outside), "{outside} in {page}");
    }
}

#[test]
fn the_report_for_ten_thousand_clocks_stays_a_few_megabytes() {
    let many: Vec<Row> = (0..10_000)
        .map(|n| {
            let mut one = rows()[n % 3].clone();
            one.issue = format!("acme/backend#{n}");
            one
        })
        .collect();
    let page = html(&many, &context());
    assert_eq!(
        page.matches("<tr class=").count(),
        10_000 + 3_334,
        "clocks and urgent rows"
    );
    eprintln!("10 000 clocks: {} bytes", page.len());
    assert!(page.len() < 5_000_000, "{} bytes", page.len());
}
