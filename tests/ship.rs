//! What ships beside the binary says what the binary really takes: the
//! CI/CD component templates use exactly the inputs they declare, and
//! their jobs, the CI template, the compose file, the Kubernetes manifests
//! and the systemd unit name only subcommands, flags, environment
//! variables, ports, paths and probes that `labelwarden` has.

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

/// Every YAML document of a file, as JSON values.
fn documents(path: &str) -> Vec<Value> {
    read(path)
        .split("\n---\n")
        .map(|document| {
            serde_saphyr::from_str::<Value>(document)
                .unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn help(subcommand: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_labelwarden"))
        .args([subcommand, "--help"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{subcommand} --help");
    String::from_utf8(output.stdout).unwrap()
}

/// The environment variables the program reads: those its options take
/// (`[env: …]` in every subcommand's help) and those its code names.
fn environment_read() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for subcommand in [
        "serve", "audit", "check", "explain", "oncall", "probe", "test", "diff",
    ] {
        for part in help(subcommand).split("[env: ").skip(1) {
            names.insert(part.split(['=', ']']).next().unwrap().to_owned());
        }
    }
    let source_names = [
        labelwarden::gitlab::client::URL_ENV,
        labelwarden::gitlab::client::TOKEN_ENV,
        labelwarden::slack::TOKEN_ENV,
        labelwarden::slack::API_URL_ENV,
    ];
    names.extend(source_names.map(str::to_owned));
    // Named in the serve command's own checks (its module is private).
    let serve = read("src/cli/serve.rs");
    for name in ["LABELWARDEN_WEBHOOK_SECRET", "SLACK_SIGNING_SECRET"] {
        assert!(serve.contains(&format!("\"{name}\"")), "{name}");
        names.insert(name.to_owned());
    }
    names
}

/// The options a command line gives that its subcommand does not take.
fn unknown_flags(words: &[&str]) -> Vec<String> {
    let (subcommand, rest) = words.split_first().expect("a subcommand");
    let help = help(subcommand);
    rest.iter()
        .filter(|w| w.starts_with("--"))
        .map(|flag| flag.split('=').next().unwrap())
        .filter(|flag| !help.contains(&format!("{flag} ")) && !help.contains(&format!("{flag}\n")))
        .map(|flag| format!("`{subcommand}` has no {flag}"))
        .collect()
}

/// Checks a command line given to the image or binary: a subcommand it
/// has and options that subcommand takes.
fn assert_command(words: &[&str], what: &str) {
    let unknown = unknown_flags(words);
    assert!(unknown.is_empty(), "{what}: {}", unknown.join(", "));
}

/// A shell word without its quotes.
fn unquoted(word: &str) -> &str {
    word.trim_matches('"').trim_matches('\'')
}

/// The `labelwarden …` command lines in a job's script, with what the
/// script builds up for them put in place: `"$@"` becomes the words of
/// every `set -- …` line, and `$name` the words of every `name="…"`
/// assignment, so a flag passed that way is checked like a written one.
fn labelwarden_commands(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut positional: Vec<String> = Vec::new();
    let mut assigned: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if let Some(words) = line.strip_prefix("set -- ") {
            positional.extend(
                words
                    .split_whitespace()
                    .filter(|w| unquoted(w) != "$@")
                    .map(|w| unquoted(w).to_owned()),
            );
            continue;
        }
        // `name="value"` or `if …; then name="value"; fi`
        for statement in line.split(';').map(str::trim) {
            let statement = statement.strip_prefix("then ").unwrap_or(statement);
            let Some((name, value)) = statement.split_once('=') else {
                continue;
            };
            if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (value.starts_with('"') || value.starts_with('\''))
            {
                let words = unquoted(value)
                    .split_whitespace()
                    .map(|w| unquoted(w).to_owned());
                assigned.push((name.to_owned(), words.collect()));
            }
        }
    }
    joined
        .lines()
        .filter_map(|line| line.trim().strip_prefix("labelwarden "))
        .map(|command| {
            let mut words = Vec::new();
            for word in command.split_whitespace().map(unquoted) {
                if word == "$@" {
                    words.extend(positional.iter().cloned());
                } else if let Some(name) = word.strip_prefix('$') {
                    let name = name.trim_start_matches('{').trim_end_matches('}');
                    let values = assigned.iter().filter(|(n, _)| n == name);
                    let expanded: Vec<String> = values.flat_map(|(_, v)| v.clone()).collect();
                    if expanded.is_empty() {
                        words.push(word.to_owned());
                    } else {
                        words.extend(expanded);
                    }
                } else {
                    words.push(word.to_owned());
                }
            }
            words
        })
        .collect()
}

#[test]
fn flags_built_up_in_a_script_are_checked_too() {
    let script = concat!(
        "set -- --project \"$P\"\n",
        "if [ -n \"$G\" ]; then\n",
        "  set -- \"$@\" --notifyy\n",
        "fi\n",
        "scope=\"--grop $G\"\n",
        "if [ -n \"$N\" ]; then note=\"--mr-note\"; fi\n",
        "labelwarden audit \"$@\" \\\n",
        "  --format table\n",
        "labelwarden diff $scope $note --base \"$B\"\n",
    );
    let commands = labelwarden_commands(script);
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(
        commands[0],
        ["audit", "--project", "$P", "--notifyy", "--format", "table"]
    );
    assert_eq!(
        commands[1],
        ["diff", "--grop", "$G", "--mr-note", "--base", "$B"]
    );
    fn words(command: &[String]) -> Vec<&str> {
        command.iter().map(String::as_str).collect()
    }
    assert_eq!(
        unknown_flags(&words(&commands[0])),
        ["`audit` has no --notifyy"]
    );
    assert_eq!(
        unknown_flags(&words(&commands[1])),
        ["`diff` has no --grop"]
    );
}

fn script_of(job: &Value) -> String {
    job["script"]
        .as_array()
        .expect("a script")
        .iter()
        .map(|line| line.as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `$[[ inputs.NAME ]]` a text uses.
fn inputs_used(text: &str) -> BTreeSet<String> {
    text.split("$[[")
        .skip(1)
        .map(|rest| {
            let inside = rest.split("]]").next().unwrap().trim();
            inside
                .strip_prefix("inputs.")
                .unwrap_or_else(|| panic!("not an input: {inside}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn component_templates_use_exactly_the_inputs_they_declare() {
    let templates: Vec<String> = std::fs::read_dir(repo("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml"))
        .map(|path| format!("templates/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(
        templates.contains(&"templates/audit.yml".to_owned())
            && templates.contains(&"templates/policy-check.yml".to_owned()),
        "{templates:?}"
    );
    for path in &templates {
        let text = read(path);
        let (header, body) = text.split_once("\n---\n").expect("two documents");
        let documents = documents(path);
        assert_eq!(documents.len(), 2, "{path}: spec, then the jobs");
        let inputs = documents[0]["spec"]["inputs"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: spec.inputs"));
        let declared: BTreeSet<String> = inputs.keys().cloned().collect();
        assert!(
            inputs_used(header).is_empty(),
            "{path}: the header uses no inputs"
        );
        assert_eq!(inputs_used(body), declared, "{path}: used = declared");
        for (name, input) in inputs {
            assert!(
                input["description"].is_string(),
                "{path}: {name} is described"
            );
            // Older GitLab schemas read an input without `type` as every
            // type at once, so only a null default would pass there.
            assert!(
                input["type"].is_string(),
                "{path}: {name} declares its type"
            );
            if let Some(options) = input["options"].as_array() {
                assert!(
                    options.contains(&input["default"]),
                    "{path}: {name}'s default is one of its options"
                );
            }
        }
        // No compiling: the jobs run labelwarden's image.
        assert!(!body.contains("cargo"), "{path} compiles labelwarden");
        for (name, job) in documents[1].as_object().unwrap() {
            let image = job["image"]["name"].as_str().unwrap_or_default();
            assert!(image.ends_with("-ci"), "{path}: {name} runs the -ci image");
            let commands = labelwarden_commands(&script_of(job));
            assert!(!commands.is_empty(), "{path}: {name} runs labelwarden");
            for command in commands {
                let words: Vec<&str> = command.iter().map(String::as_str).collect();
                assert_command(&words, &format!("{path}: {name}"));
            }
        }
    }
    // The flags a script builds up are among those checked.
    let built_up = |path: &str, job: &str, subcommand: &str| -> Vec<String> {
        let script = script_of(&documents(path)[1][job]);
        labelwarden_commands(&script)
            .into_iter()
            .find(|c| c[0] == subcommand)
            .unwrap_or_else(|| panic!("{path}: labelwarden {subcommand}"))
    };
    let audit_command = built_up("templates/audit.yml", "labelwarden-audit", "audit");
    for flag in [
        "--group",
        "--project",
        "--policies",
        "--notify",
        "--fail-on",
    ] {
        assert!(audit_command.iter().any(|w| w == flag), "{audit_command:?}");
    }
    let diff_command = built_up(
        "templates/policy-check.yml",
        "labelwarden-policy-check",
        "diff",
    );
    for flag in ["--group", "--project", "--mr-note", "--base"] {
        assert!(diff_command.iter().any(|w| w == flag), "{diff_command:?}");
    }
    // The audit component's choices are audit's own.
    let audit = documents("templates/audit.yml");
    let fail_on: Vec<&str> = audit[0]["spec"]["inputs"]["fail_on"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    let help = help("audit");
    for option in fail_on {
        assert!(help.contains(&format!("- {option}:")), "--fail-on {option}");
    }
}

#[test]
fn the_ci_template_runs_the_image_and_real_flags() {
    let path = "ci/labelwarden-audit.gitlab-ci.yml";
    let documents = documents(path);
    let job = &documents[0]["labelwarden-audit"];
    assert!(
        job["image"]["name"]
            .as_str()
            .is_some_and(|i| i.ends_with(":1-ci")),
        "{job}"
    );
    let script = script_of(job);
    assert!(!script.contains("cargo"), "no compiling: {script}");
    let commands = labelwarden_commands(&script);
    assert_eq!(commands.len(), 1, "{script}");
    let words: Vec<&str> = commands[0].iter().map(String::as_str).collect();
    assert_command(&words, path);
    // And in merge requests that change the policies: check, test, diff.
    let review = &documents[0]["labelwarden-policy-check"];
    let script = script_of(review);
    let commands = labelwarden_commands(&script);
    let subcommands: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(subcommands, ["check", "test", "diff"], "{script}");
    for command in &commands {
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        assert_command(&words, path);
    }
    assert!(
        script.contains("--base \"$CI_MERGE_REQUEST_DIFF_BASE_SHA\""),
        "{script}"
    );
    assert_eq!(
        review["rules"][0]["if"],
        "$CI_PIPELINE_SOURCE == \"merge_request_event\""
    );
    // The project's own pipeline keeps its checks and releases on tags.
    let pipeline = &self::documents(".gitlab-ci.yml")[0];
    for job in [
        "fmt",
        "clippy",
        "test",
        "release",
        "container-image",
        "binary",
        "gitlab-release",
    ] {
        assert!(pipeline[job].is_object(), ".gitlab-ci.yml: {job}");
    }
}

/// The port of a `host:port` listen address.
fn port_of(listen: &str) -> u64 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn compose_names_what_serve_takes() {
    let environment = environment_read();
    let compose = &documents("deploy/compose.yaml")[0];
    let service = &compose["services"]["labelwarden"];
    let command: Vec<&str> = service["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_command(&command, "compose");
    let env = service["environment"].as_object().unwrap();
    for name in env.keys() {
        assert!(environment.contains(name), "compose sets {name}");
    }
    let listen = port_of(env["LABELWARDEN_LISTEN"].as_str().unwrap());
    let published = service["ports"][0].as_str().unwrap();
    assert_eq!(port_of(published), listen, "the container port is serve's");
    let policies = env["LABELWARDEN_POLICIES"].as_str().unwrap();
    assert!(
        service["volumes"][0]
            .as_str()
            .unwrap()
            .contains(&format!(":{policies}:")),
        "the policies are mounted where serve reads them"
    );
    let probe: Vec<&str> = service["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .skip(2)
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(probe[0], "probe");
    assert!(["/healthz", "/readyz"].contains(&probe[1]));
    assert!(
        env["LABELWARDEN_DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://"),
        "on the compose file's PostgreSQL"
    );
    // The env file names only what labelwarden (or compose) reads.
    for line in read("deploy/labelwarden.env.example").lines() {
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.starts_with('#') || name == "POSTGRES_PASSWORD" {
            continue;
        }
        assert!(environment.contains(name), "the env file sets {name}");
    }
}

#[test]
fn kubernetes_manifests_name_what_serve_takes() {
    let environment = environment_read();
    let documents = documents("deploy/kubernetes/labelwarden.yaml");
    let of_kind = |kind: &str| -> &Value {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind}"))
    };
    let secret = of_kind("Secret");
    for name in secret["stringData"].as_object().unwrap().keys() {
        assert!(environment.contains(name), "the Secret sets {name}");
    }
    let deployment = of_kind("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_command(&args, "the Deployment");
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    for (name, _) in &env {
        assert!(environment.contains(*name), "the Deployment sets {name}");
    }
    let value = |name: &str| env.iter().find(|(n, _)| *n == name).unwrap().1;
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_u64().unwrap(),
        port_of(value("LABELWARDEN_LISTEN"))
    );
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], port["name"], "{probe}");
    }
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "policies")
        .unwrap();
    assert_eq!(mount["mountPath"], value("LABELWARDEN_POLICIES"));
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"].as_str().unwrap(),
        port["containerPort"].to_string()
    );
    assert_eq!(
        &of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    );
    let service = of_kind("Service");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
}

#[test]
fn the_systemd_unit_names_what_serve_takes() {
    let environment = environment_read();
    let unit = read("deploy/systemd/labelwarden.service");
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|line| line.strip_prefix(&format!("{key}=")))
            .collect()
    };
    let exec = value("ExecStart")[0];
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/labelwarden");
    assert_command(&words[1..], "the unit");
    let mut database = None;
    for assignment in value("Environment") {
        let (name, setting) = assignment.split_once('=').unwrap();
        assert!(environment.contains(name), "the unit sets {name}");
        if name == "LABELWARDEN_DATABASE_URL" {
            database = Some(setting.to_owned());
        }
    }
    // Its SQLite file lives in the state directory systemd makes writable.
    let state = value("StateDirectory")[0];
    assert!(
        database
            .unwrap()
            .starts_with(&format!("sqlite:///var/lib/{state}/")),
        "the store is in /var/lib/{state}"
    );
    assert_eq!(value("WorkingDirectory")[0], format!("/var/lib/{state}"));
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
}
