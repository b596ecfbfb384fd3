//! The `latchkey` command line: a stable contract that scripts rely on.
//!
//! Exit codes: 0 success, 1 runtime failure (database, keys, I/O), 2 bad arguments.
//! Failures print one line on stderr. `--json` output is exactly one JSON value on stdout.
//!
//! This file holds the top-level arguments and the dispatch; each command family has its own
//! file with its arguments and its work: `clients`, `users`, `groups`, `roles`, `keys`,
//! `registration` (initial access tokens), `maintenance` (migrate, backup, audit log) and
//! `serve`. `common` holds what they share (the failure type, the store, output, audit).

mod clients;
mod common;
mod groups;
mod keys;
mod maintenance;
mod registration;
mod roles;
mod serve;
mod users;

use clap::{Parser, Subcommand};
use latchkey_core::Settings;
use std::path::PathBuf;
use std::process::ExitCode;

use common::Fail;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Latchkey: an OAuth 2.0 / OpenID Connect provider")]
struct Cli {
    /// Configuration file (TOML); see config/latchkey.toml.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Create a demo user and a demo relying party at /demo (empty database only).
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage clients (relying parties).
    #[command(subcommand)]
    Client(clients::ClientCmd),
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCmd),
    /// Manage groups (tokens carry a user's groups as the `groups` claim).
    #[command(subcommand)]
    Group(groups::GroupCmd),
    /// Grant and revoke roles (tokens carry them as the `roles` claim).
    #[command(subcommand)]
    Role(roles::RoleCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Dynamic client registration.
    #[command(subcommand)]
    Registration(registration::RegistrationCmd),
    /// Consistent online copy of the SQLite database into a new FILE (PostgreSQL: use pg_dump).
    Backup {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print security events from the audit log, oldest first.
    Audit {
        /// RFC 3339 time or Unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// Username or user id: matches the event's actor or its detail.user.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            // "the following required arguments were not provided:" names them on the next line.
            match lines.next().filter(|_| first.ends_with(':')) {
                Some(next) => eprintln!("latchkey: {first} {next}"),
                None => eprintln!("latchkey: {first}"),
            }
            return ExitCode::from(2);
        }
    };
    let settings = match crate::config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("latchkey: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings, matches!(cli.command, Command::Serve { .. }));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("latchkey: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(settings: &Settings, serving: bool) {
    use tracing_subscriber::EnvFilter;
    // Commands other than `serve` keep stderr quiet unless something is wrong.
    let default = if serving { settings.log_filter.as_str() } else { "warn" };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.log_format {
        latchkey_core::settings::LogFormat::Json => builder.json().try_init(),
        latchkey_core::settings::LogFormat::Human => builder.try_init(),
    };
}

async fn run(cmd: Command, settings: Settings) -> Result<(), Fail> {
    match cmd {
        Command::Serve { demo } => serve::serve(settings, demo).await,
        Command::Migrate => maintenance::migrate(&settings).await,
        Command::Client(c) => clients::run(c, &settings).await,
        Command::User(u) => users::run(u, &settings).await,
        Command::Group(g) => groups::run(g, &settings).await,
        Command::Role(r) => roles::run(r, &settings).await,
        Command::Keys(k) => keys::run(k, &settings).await,
        Command::Registration(r) => registration::run(r, &settings).await,
        Command::Backup { file } => maintenance::backup(&settings, &file).await,
        Command::Audit { since, user, kind, limit, json } => {
            maintenance::audit_log(&settings, since.as_deref(), user.as_deref(), kind.as_deref(), limit, json).await
        }
    }
}
