//! `labelwarden schema`: the JSON Schema of policy files, generated from the
//! same types the loader parses, so it cannot drift from what is accepted.

use std::process::ExitCode;

use crate::policy::file::PolicyFile;

pub fn run() -> ExitCode {
    let schema = schemars::schema_for!(PolicyFile);
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the schema: {e}");
            ExitCode::FAILURE
        }
    }
}
