//! The documentation says what the binary does: the book's reference
//! pages are exactly what `labelwarden reference` prints, and list every
//! command and flag `--help` shows and every key of the committed JSON
//! Schemas (checked from those, not from the generator); the book's
//! summary names every chapter there is; the README stays a page or two
//! and its minimal policy passes `check`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn labelwarden(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "labelwarden {args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The reference pages and the command that makes each.
const PAGES: [(&str, &str); 3] = [
    ("commands", "docs/src/reference/commands.md"),
    ("policy", "docs/src/reference/policy-keys.md"),
    ("tests", "docs/src/reference/test-keys.md"),
];

#[test]
fn the_reference_pages_are_what_the_binary_prints() {
    for (page, path) in PAGES {
        let printed = labelwarden(&["reference", page]);
        let committed = read(path);
        assert!(
            printed == committed,
            "{path} is not what `labelwarden reference {page}` prints: run scripts/reference.sh and commit the pages"
        );
    }
}

/// The subcommands `--help` lists (the `Commands:` section).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The long flags a `--help` text lists: the first `--flag` of each
/// option line (`  -f, --flag <VALUE>  what it does`), not flags its
/// descriptions mention.
fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            line.split(|c: char| c.is_whitespace() || c == ',')
                .find(|word| word.starts_with("--") && word.len() > 2)
        })
        .map(|flag| flag.trim_end_matches(|c: char| !c.is_alphanumeric()))
        .filter(|flag| !matches!(*flag, "--help" | "--version"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_and_flag_has_its_place_in_the_reference() {
    let page = read("docs/src/reference/commands.md");
    let mut missing = Vec::new();
    let mut queue: Vec<Vec<String>> = subcommands(&labelwarden(&["--help"]))
        .into_iter()
        .map(|name| vec![name])
        .collect();
    assert!(queue.len() >= 15, "the commands were read: {queue:?}");
    while let Some(words) = queue.pop() {
        let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
        args.push("--help");
        let help = labelwarden(&args);
        let heading = format!("\n## `labelwarden {}`\n", words.join(" "));
        let Some(start) = page.find(&heading) else {
            missing.push(format!("command `{}`", words.join(" ")));
            continue;
        };
        let rest = &page[start + heading.len()..];
        let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
        for flag in long_flags(&help) {
            if !section.contains(&format!("`{flag}")) {
                missing.push(format!("`{flag}` of `{}`", words.join(" ")));
            }
        }
        for child in subcommands(&help) {
            let mut deeper = words.clone();
            deeper.push(child);
            queue.push(deeper);
        }
    }
    assert!(
        missing.is_empty(),
        "missing from the commands page: {missing:?}"
    );
}

/// Every key path of a JSON Schema, as the reference writes them.
fn key_paths(root: &Value, node: &Value, path: &str, into: &mut BTreeSet<String>, depth: usize) {
    if depth > 12 {
        return;
    }
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => &root["$defs"][reference.trim_start_matches("#/$defs/")],
        None => node,
    };
    for combinator in ["anyOf", "oneOf"] {
        for variant in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            key_paths(root, variant, path, into, depth + 1);
        }
    }
    for (name, child) in node
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        into.insert(child_path.clone());
        key_paths(root, child, &child_path, into, depth + 1);
    }
    if let Some(items) = node.get("items") {
        key_paths(root, items, &format!("{path}[]"), into, depth + 1);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        key_paths(root, values, &format!("{path}.<name>"), into, depth + 1);
    }
}

#[test]
fn every_key_of_the_file_formats_has_its_row_in_the_reference() {
    for (schema, path) in [
        (
            "labelwarden.schema.json",
            "docs/src/reference/policy-keys.md",
        ),
        (
            "labelwarden-tests.schema.json",
            "docs/src/reference/test-keys.md",
        ),
    ] {
        let root: Value = serde_json::from_str(&read(schema)).unwrap();
        let mut keys = BTreeSet::new();
        key_paths(&root, &root, "", &mut keys, 0);
        assert!(keys.len() > 20, "{schema}: the keys were read: {keys:?}");
        let page = read(path);
        let missing: Vec<&String> = keys
            .iter()
            .filter(|key| !page.contains(&format!("| `{key}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "{path} lacks keys of {schema}: {missing:?}"
        );
    }
}

#[test]
fn the_summary_lists_every_chapter_and_only_chapters_there_are() {
    let summary = read("docs/src/SUMMARY.md");
    let linked: BTreeSet<String> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .collect();
    let mut chapters = BTreeSet::new();
    let mut folders = vec![repo("docs/src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md")
                && path.file_name().is_some_and(|n| n != "SUMMARY.md")
            {
                let relative = path.strip_prefix(repo("docs/src")).unwrap();
                chapters.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(linked, chapters, "docs/src/SUMMARY.md and the chapters");
}

#[test]
fn the_readme_is_a_page_or_two_and_links_only_to_what_exists() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < 200,
        "README.md has {lines} lines; the rest belongs in the book"
    );
    for target in readme
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')'))
    {
        let file = target.0.split('#').next().unwrap();
        assert!(
            repo(file).exists(),
            "README.md links to {file}, which is not there"
        );
    }
}

#[test]
fn the_readme_s_minimal_policy_passes_check() {
    let readme = read("README.md");
    let policy = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README shows a policy");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yml"), policy).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args(["check", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_rules_chapter_s_examples_pass_check() {
    let chapter = read("docs/src/rules.md");
    let blocks: Vec<&str> = chapter
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .collect();
    assert!(blocks.len() >= 2, "the chapter shows its rules");
    for block in blocks {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yml"), block).unwrap();
        // Beside the shipped channels and people, as a team would write them.
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/channels.yml"),
            dir.path().join("channels.yml"),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
            .args(["check", "--policies"])
            .arg(dir.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && said.contains("rule"),
            "{block}\n{said}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
