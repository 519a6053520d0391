//! The command line: parses arguments and hands each command to its module.
//! Exit codes are part of the interface: 0 fine, 2 bad configuration.

mod check;
mod schema;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "labelwarden",
    version,
    about = "GitLab label policies with SLA clocks, escalated in Slack"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the policy files and summarise each policy (exit 2 if invalid).
    Check(PolicyArgs),
    /// Print the JSON Schema of the policy file format, for editors.
    Schema,
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// Folder of policy files (*.yml, *.yaml), read recursively.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
}

/// Exit code for configuration and access errors.
const EXIT_CONFIG: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => check::run(&args.policies),
        Command::Schema => schema::run(),
    }
}
