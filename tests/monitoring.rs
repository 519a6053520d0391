//! The monitoring files shipped in `deploy/`: the Prometheus alerting
//! rules pass `promtool check rules` and their own unit tests (`promtool
//! test rules`), and every metric the rules and the Grafana dashboard
//! query is one labelwarden exports, so a renamed metric fails here, not
//! on somebody's empty panel. `.ci/run` installs promtool and sets
//! `LABELWARDEN_REQUIRE_PROMTOOL`, so there these checks cannot be skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use labelwarden::server::metric_help::{Kind, METRICS};
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Runs promtool, or says why not (and fails where it is required).
fn promtool(args: &[&str], dir: &Path) -> Option<String> {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "promtool {args:?}:\n{said}");
            Some(said)
        }
        Err(e) => {
            assert!(
                std::env::var_os("LABELWARDEN_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here: {e}"
            );
            eprintln!("promtool not found ({e}): promtool {args:?} skipped");
            None
        }
    }
}

/// The metric names a PromQL expression reads, each as exported: a
/// histogram's `_bucket`, `_sum` and `_count` series are its own.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("labelwarden_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        found.insert(name);
    }
    found
}

/// Whether labelwarden exports a series by this name.
fn exported(name: &str) -> bool {
    METRICS.iter().any(|metric| {
        metric.name == name
            || (metric.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name == format!("{}{suffix}", metric.name)))
    })
}

#[test]
fn the_alerting_rules_pass_promtool_and_fire_in_their_unit_tests() {
    let dir = deploy("prometheus");
    if let Some(said) = promtool(&["check", "rules", "labelwarden-rules.yml"], &dir) {
        assert!(said.contains("SUCCESS: 9 rules found"), "{said}");
    }
    if let Some(said) = promtool(&["test", "rules", "labelwarden-rules.test.yml"], &dir) {
        assert!(said.contains("SUCCESS"), "{said}");
    }
}

#[test]
fn every_metric_the_rules_query_is_exported() {
    let text = std::fs::read_to_string(deploy("prometheus/labelwarden-rules.yml")).unwrap();
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr: "))
        .collect();
    assert_eq!(exprs.len(), 9, "{exprs:#?}");
    for expr in exprs {
        let names = metrics_in(expr);
        assert!(!names.is_empty(), "{expr} reads no labelwarden metric");
        for name in names {
            assert!(exported(&name), "`{name}` in `{expr}` is not exported");
        }
    }
}

#[test]
fn every_dashboard_panel_queries_exported_metrics_and_has_its_own_place() {
    let text = std::fs::read_to_string(deploy("grafana/labelwarden.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "labelwarden");
    assert_eq!(
        dashboard["templating"]["list"][0]["name"], "datasource",
        "the Prometheus data source is chosen on import"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id taken"
        );
        let place = &panel["gridPos"];
        let (x, y, w, h) = (
            place["x"].as_u64().unwrap(),
            place["y"].as_u64().unwrap(),
            place["w"].as_u64().unwrap(),
            place["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{title} is wider than the dashboard");
        for row in y..y + h {
            for column in x..x + w {
                assert!(
                    cells.insert((row, column)),
                    "{title} overlaps another panel"
                );
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title} says what it shows"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has a query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metrics_in(expr);
            assert!(
                !names.is_empty(),
                "{title}: `{expr}` reads no labelwarden metric"
            );
            for name in names {
                assert!(exported(&name), "{title}: `{name}` is not exported");
                queried.insert(name);
            }
        }
    }
    // What the dashboard is for: the SLA record and what makes it go quiet.
    for needed in [
        "labelwarden_sla_met_ratio",
        "labelwarden_time_to_acknowledge_seconds_bucket",
        "labelwarden_time_to_resolve_seconds_bucket",
        "labelwarden_breaches_total",
        "labelwarden_outbox_pending",
        "labelwarden_destination_failing",
        "labelwarden_webhook_deliveries_total",
        "labelwarden_webhook_intake_seconds_bucket",
        "labelwarden_reconcile_last_success_timestamp_seconds",
    ] {
        assert!(queried.contains(needed), "no panel shows {needed}");
    }
}
