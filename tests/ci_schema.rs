//! Every CI file labelwarden ships is valid for GitLab: each YAML document
//! of `.gitlab-ci.yml`, `ci/*.yml` and `templates/*.yml`, and the CI
//! snippets of the README and the book, validated against GitLab's own CI JSON Schema
//! (`tests/fixtures/gitlab-ci-schema/`, with its source in `SOURCE.md`).
//! GitLab refuses a whole file for one bad job, so one slip here would
//! stop every pipeline of a project that includes it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

const SCHEMA: &str = "tests/fixtures/gitlab-ci-schema/ci.json";
/// The SHA-256 `SOURCE.md` records for the vendored schema.
const SCHEMA_SHA256: &str = "1c6eeb7d3a34c39996afbfe1ade220480eb05bbeae674e86d3c745dfeeded7fd";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn validator() -> jsonschema::Validator {
    let text = read(SCHEMA);
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    assert_eq!(
        digest, SCHEMA_SHA256,
        "{SCHEMA} is not the copy SOURCE.md names"
    );
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .expect("GitLab's schema compiles")
}

/// Every YAML document of a text (a component template has two: its
/// `spec:` header and its jobs), as JSON values.
fn documents(name: &str, text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{name} does not parse as YAML: {e}"))
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

/// What GitLab's schema says is wrong with a text, one line per error:
/// the document, where in it, and why.
fn schema_errors(validator: &jsonschema::Validator, name: &str, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for (index, document) in documents(name, text).iter().enumerate() {
        for error in validator.iter_errors(document) {
            errors.push(format!(
                "{name}, document {}: at `{}`: {error}",
                index + 1,
                error.instance_path()
            ));
        }
    }
    errors
}

/// The CI files shipped: the project's own pipeline, the `include:
/// remote:` template and the CI/CD components.
fn shipped_ci_files() -> Vec<String> {
    let mut files = vec![".gitlab-ci.yml".to_owned()];
    for folder in ["ci", "templates"] {
        let mut names: Vec<String> = std::fs::read_dir(repo(folder))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
            .map(|name| format!("{folder}/{name}"))
            .collect();
        names.sort();
        files.extend(names);
    }
    files
}

#[test]
fn every_shipped_ci_file_is_valid_for_gitlab() {
    let validator = validator();
    let files = shipped_ci_files();
    for expected in [
        ".gitlab-ci.yml",
        "ci/labelwarden-audit.gitlab-ci.yml",
        "templates/audit.yml",
        "templates/drill.yml",
        "templates/policy-check.yml",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected}: {files:?}");
    }
    let errors: Vec<String> = files
        .iter()
        .flat_map(|path| schema_errors(&validator, path, &read(path)))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The ```yaml blocks of the README and the book that are CI
/// configuration (they start with `include:`): what a user pastes into
/// their `.gitlab-ci.yml`.
#[test]
fn the_documentation_s_ci_snippets_are_valid_for_gitlab() {
    let validator = validator();
    let mut pages = vec!["README.md".to_owned()];
    let mut chapters: Vec<String> = std::fs::read_dir(repo("docs/src"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| format!("docs/src/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    chapters.sort();
    pages.extend(chapters);
    let mut snippets: Vec<(String, String)> = Vec::new();
    for page in &pages {
        let text = read(page);
        let blocks = text
            .split("```yaml\n")
            .skip(1)
            .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
            .filter(|block| block.trim_start().starts_with("include:"));
        for (i, block) in blocks.enumerate() {
            snippets.push((format!("{page} snippet {}", i + 1), block.to_owned()));
        }
    }
    assert!(snippets.len() >= 2, "the documentation's include snippets");
    let errors: Vec<String> = snippets
        .iter()
        .flat_map(|(name, block)| schema_errors(&validator, name, block))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The check can fail: the trap that once made `.gitlab-ci.yml` invalid
/// (a plain script line holding `": "`, which YAML reads as a mapping) is
/// refused, and the same line quoted or folded is accepted.
#[test]
fn a_script_line_yaml_reads_as_a_mapping_is_refused() {
    let validator = validator();
    let plain = concat!(
        "upload:\n",
        "  script:\n",
        "    - curl --fail --header \"JOB-TOKEN: $CI_JOB_TOKEN\" --upload-file a.bin\n",
        "        \"$CI_API_V4_URL/projects/1/packages/generic/a/1/a.bin\"\n",
    );
    let errors = schema_errors(&validator, "plain", plain);
    assert!(
        errors.iter().any(|e| e.contains("/upload/script")),
        "{errors:?}"
    );
    for fixed in [
        concat!(
            "upload:\n",
            "  script:\n",
            "    - 'curl --fail --header \"JOB-TOKEN: $CI_JOB_TOKEN\" --upload-file a.bin\n",
            "        \"$CI_API_V4_URL/projects/1/packages/generic/a/1/a.bin\"'\n",
        ),
        concat!(
            "upload:\n",
            "  script:\n",
            "    - >-\n",
            "      curl --fail --header \"JOB-TOKEN: $CI_JOB_TOKEN\" --upload-file a.bin\n",
            "      \"$CI_API_V4_URL/projects/1/packages/generic/a/1/a.bin\"\n",
        ),
    ] {
        let errors = schema_errors(&validator, "fixed", fixed);
        assert!(errors.is_empty(), "{fixed}\n{errors:?}");
    }
}

/// A component's header is checked the way GitLab checks it: a boolean
/// input's default must be a boolean, and `spec:` takes no unknown key.
#[test]
fn a_component_header_with_a_wrongly_typed_default_is_refused() {
    let validator = validator();
    let header = concat!(
        "spec:\n",
        "  inputs:\n",
        "    notify:\n",
        "      type: boolean\n",
        "      default: \"yes\"\n",
    );
    let errors = schema_errors(&validator, "header", header);
    assert!(
        errors.iter().any(|e| e.contains("/spec/inputs/notify")),
        "{errors:?}"
    );
    let unknown = concat!(
        "spec:\n",
        "  input:\n",
        "    stage:\n",
        "      default: test\n"
    );
    let errors = schema_errors(&validator, "unknown", unknown);
    assert!(
        errors.iter().any(|e| e.contains("at `/spec`")),
        "{errors:?}"
    );
}
