//! The `labelwarden` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;
use labelwarden::cli::{Cli, run};

fn main() -> ExitCode {
    run(Cli::parse())
}
