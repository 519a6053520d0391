//! `labelwarden store stats`: rows per table and the store's size (what
//! retention keeps small), and `labelwarden backup FILE`: a consistent
//! copy of a SQLite store while `serve` runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{DatabaseArg, fail, on_store};
use crate::audit::report::aligned;
use crate::store::Store;
use crate::store::retention::StoreSize;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
    #[command(flatten)]
    database: DatabaseArg,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Rows per table and the bytes the database takes.
    Stats {
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (it must not exist); the intake file is written
    /// beside it (`backup.db` and `backup.intake.db`).
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseArg,
}

pub fn run(args: StoreArgs) -> ExitCode {
    let StoreCommand::Stats { format } = args.command;
    on_store(&args.database, |store| async move {
        match store.size().await {
            Ok(size) => {
                print!("{}", shown(&size, format));
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot measure the store: {e}")),
        }
    })
}

pub fn run_backup(args: BackupArgs) -> ExitCode {
    on_store(&args.database, |store| async move {
        match store.backup(&args.file).await {
            Ok(files) => {
                for file in files {
                    println!("wrote {}", file.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cannot back up the store: {e}")),
        }
    })
}

fn shown(size: &StoreSize, format: Format) -> String {
    match format {
        Format::Json => {
            let tables: serde_json::Map<String, serde_json::Value> = size
                .tables
                .iter()
                .map(|(table, rows)| (table.clone(), (*rows).into()))
                .collect();
            format!(
                "{}\n",
                serde_json::json!({ "tables": tables, "bytes": size.bytes })
            )
        }
        Format::Table => {
            let cells: Vec<[String; 2]> = size
                .tables
                .iter()
                .map(|(table, rows)| [table.clone(), rows.to_string()])
                .collect();
            let mut lines = aligned(&["TABLE", "ROWS"], &cells);
            lines.push(format!("size on disk: {}", megabytes(size.bytes)));
            lines.join("\n") + "\n"
        }
    }
}

/// Bytes in MB, one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_list_every_table_and_the_size() {
        let size = StoreSize {
            tables: vec![("issues".into(), 12), ("deliveries".into(), 3400)],
            bytes: 5_260_000,
        };
        let table = shown(&size, Format::Table);
        assert_eq!(
            table,
            "TABLE       ROWS\nissues      12\ndeliveries  3400\nsize on disk: 5.3 MB\n"
        );
        let json: serde_json::Value = serde_json::from_str(&shown(&size, Format::Json)).unwrap();
        assert_eq!(json["tables"]["deliveries"], 3400);
        assert_eq!(json["bytes"], 5_260_000);
    }
}
