//! The container image's root filesystem, run as its non-root user with
//! chroot: `scripts/image-local.sh` assembles the image and runs this
//! ignored test with `LABELWARDEN_IMAGE_ROOT` set to where it is mounted.
//! Not part of `cargo test`: it needs root (for chroot) and buildah.

mod common;

use std::process::Command;

use chrono::{TimeDelta, Utc};
use common::HIGHEST;
use common::fake_gitlab::{self, FakeGitLab, FakeIssue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the image's root filesystem: run scripts/image-local.sh"]
async fn audit_runs_from_the_image_against_gitlab() {
    let root = std::env::var("LABELWARDEN_IMAGE_ROOT")
        .expect("LABELWARDEN_IMAGE_ROOT: the mounted image (scripts/image-local.sh sets it)");
    let gitlab = FakeGitLab::start().await;
    let now = Utc::now();
    let labelled = now - TimeDelta::hours(30);
    gitlab.gitlab.add(
        FakeIssue::new("acme/backend", 1, labelled)
            .add_label(labelled, HIGHEST)
            .assign("jdoe"),
    );
    let fresh = now - TimeDelta::hours(2);
    gitlab
        .gitlab
        .add(FakeIssue::new("acme/backend", 2, fresh).add_label(fresh, HIGHEST));
    // The image's own environment: its policies path, nothing from here.
    let output = Command::new("env")
        .args([
            "-i",
            "LABELWARDEN_POLICIES=/etc/labelwarden/policies",
            &format!("GITLAB_URL={}", gitlab.url),
            &format!("GITLAB_TOKEN={}", fake_gitlab::TOKEN),
            "/usr/sbin/chroot",
            "--userspec=65532:65532",
            &root,
            "/usr/local/bin/labelwarden",
            "audit",
            "--project",
            "acme/backend",
            "--format",
            "json",
            "--fail-on",
            "never",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    let statuses: Vec<(String, String)> = report["clocks"]
        .as_array()
        .expect("clocks")
        .iter()
        .filter(|c| c["policy"] == "critical-bug-24h")
        .map(|c| {
            (
                c["issue"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("acme/backend#1".to_owned(), "breached".to_owned())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("acme/backend#2".to_owned(), "running".to_owned())),
        "{statuses:?}"
    );
}
