//! `labelwarden serve`: the webhook receiver with its store and timers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::EXIT_CONFIG;
use crate::jobs::Context;
use crate::notify::{LogNotifier, Notifier};
use crate::policy;
use crate::server::{self, ServerConfig};
use crate::slack::{SlackNotifier, SlackSettings};
use crate::store::sql::SqlStore;

/// The environment variable holding the webhook secret(s), comma-separated.
/// Read from the environment only: a flag would show in `ps`.
pub const SECRET_ENV: &str = "LABELWARDEN_WEBHOOK_SECRET";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LABELWARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder of policy files.
    #[arg(long, env = "LABELWARDEN_POLICIES", default_value = "policies")]
    policies: PathBuf,
    /// Database URL; the default is a SQLite file in the working directory.
    #[arg(
        long,
        env = "LABELWARDEN_DATABASE_URL",
        default_value = "sqlite://labelwarden.db"
    )]
    database: String,
    /// How notices are sent: `slack` (needs SLACK_BOT_TOKEN, and the URL of
    /// every `webhook_env` channel), or `log` to write them to the log.
    #[arg(long, env = "LABELWARDEN_NOTIFIER", value_enum)]
    notifier: NotifierKind,
    /// Accept webhooks without a secret. For local trials only.
    #[arg(long)]
    insecure_no_secret: bool,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, env = "LABELWARDEN_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NotifierKind {
    /// Post to Slack as the policies' channels say.
    Slack,
    /// Write each notice to the log.
    Log,
}

pub fn run(args: ServeArgs) -> ExitCode {
    let secrets: Vec<SecretString> = std::env::var(SECRET_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect();
    if secrets.is_empty() && !args.insecure_no_secret {
        eprintln!(
            "error: set {SECRET_ENV} to the secret token configured on the GitLab webhook \
             (comma-separated to rotate), or pass --insecure-no-secret for a local trial"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let policies = match policy::load(&args.policies) {
        Ok(set) => Arc::new(set),
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Everything Slack needs is checked before anything starts.
    let slack = match args.notifier {
        NotifierKind::Log => None,
        NotifierKind::Slack => match SlackSettings::from_env(&policies) {
            Ok(settings) => Some(settings),
            Err(e) => {
                eprintln!("error: --notifier slack: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let store = match SqlStore::connect(&args.database).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("error: {}: {e}", args.database);
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        if secrets.is_empty() {
            tracing::warn!("no webhook secret: anyone who can reach this port can send events");
        }
        tracing::info!(policies = policies.policies.len(), database = %args.database, "starting");
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let context = Arc::new(Context::new(store, policies));
        let config = ServerConfig {
            secrets,
            max_body_bytes: args.max_body_bytes,
        };
        match slack {
            None => serve(listener, config, context, LogNotifier, shutdown).await,
            Some(settings) => {
                let notifier = match SlackNotifier::new(Arc::clone(&context.policies), settings) {
                    Ok(notifier) => notifier,
                    Err(e) => {
                        eprintln!("error: --notifier slack: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                };
                serve(listener, config, context, notifier, shutdown).await
            }
        }
    })
}

async fn serve<N: Notifier>(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    context: Arc<Context<SqlStore>>,
    notifier: N,
    shutdown: CancellationToken,
) -> ExitCode {
    match server::run(listener, config, context, Arc::new(notifier), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
