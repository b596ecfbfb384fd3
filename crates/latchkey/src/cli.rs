//! The `latchkey` command line: a stable contract that scripts rely on.
//!
//! Exit codes: 0 success, 1 runtime failure (database, keys, I/O), 2 bad arguments.
//! Failures print one line on stderr. `--json` output is exactly one JSON value on stdout.

use clap::{ArgGroup, Args, Parser, Subcommand};
use latchkey_core::UnixTime;
use latchkey_core::model::{
    AccessTokenFormat, Client, ClientAuthMethod, GrantType, Group, RoleGrant, RoleHolder, SigningAlg, User,
    validate_name, validate_user_claims,
};
use latchkey_core::redirect::validate_for_registration;
use latchkey_core::scope::Scope;
use latchkey_core::{Clock, SecretToken, Settings, SystemClock};
use latchkey_signer::MasterKey;
use latchkey_storage::{Created, RoleFilter, Store};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::server::{self, StartupError, redact};

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
    Client(ClientCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups (tokens carry a user's groups as the `groups` claim).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Grant and revoke roles (tokens carry them as the `roles` claim).
    #[command(subcommand)]
    Role(RoleCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Dynamic client registration.
    #[command(subcommand)]
    Registration(RegistrationCmd),
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

#[derive(Subcommand)]
enum ClientCmd {
    /// Register a client. Confidential clients get a secret, shown this once only.
    Add(ClientAdd),
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a client; options not given stay as they are.
    Update(ClientUpdate),
    /// Remove a client and everything issued to it.
    Remove { client_id: String },
}

#[derive(Args)]
struct ClientAdd {
    #[arg(long)]
    name: String,
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required). Same as --auth-method none.
    #[arg(long)]
    public: bool,
    #[arg(long, value_parser = parse_auth_method)]
    auth_method: Option<ClientAuthMethod>,
    #[arg(long = "grant-type", value_parser = parse_grant_type)]
    grant_types: Vec<GrantType>,
    /// Space-separated scopes the client may request.
    #[arg(long, default_value = "openid profile email address phone groups roles offline_access")]
    scope: String,
    /// First-party client: no consent screen.
    #[arg(long)]
    skip_consent: bool,
    /// Require PKCE even though the client is confidential.
    #[arg(long)]
    require_pkce: bool,
    #[arg(long, value_parser = parse_alg)]
    id_token_signed_response_alg: Option<SigningAlg>,
    /// Access token format for this client (default: access_token.format).
    #[arg(long, value_parser = parse_format)]
    access_token_format: Option<AccessTokenFormat>,
    /// Issue refresh tokens without the offline_access scope (first-party policy).
    #[arg(long)]
    refresh_without_offline_access: bool,
    /// An RFC 8707 resource (audience) the client may ask client-credentials tokens for.
    #[arg(long = "resource", value_name = "URI")]
    resources: Vec<String>,
    /// A JWK Set file with the client's public keys (private_key_jwt).
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Where the client publishes its JWK Set (private_key_jwt; https).
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// A URL (https) the client may pass as `request_uri`; only registered ones are fetched.
    #[arg(long = "request-uri", value_name = "URL")]
    request_uris: Vec<String>,
    /// A resource server: may introspect any token.
    #[arg(long)]
    introspection: bool,
    /// A browser origin (https://app.example) allowed to call the token, UserInfo, revocation
    /// and introspection endpoints (CORS); default: the origins of the redirect URIs.
    #[arg(long = "web-origin", value_name = "ORIGIN")]
    web_origins: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ClientUpdate {
    client_id: String,
    #[arg(long)]
    name: Option<String>,
    /// Replaces the registered redirect URIs.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Replaces the registered post-logout redirect URIs.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    #[arg(long = "grant-type", value_parser = parse_grant_type)]
    grant_types: Vec<GrantType>,
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    skip_consent: Option<bool>,
    #[arg(long)]
    require_pkce: Option<bool>,
    #[arg(long, value_parser = parse_alg)]
    id_token_signed_response_alg: Option<SigningAlg>,
    #[arg(long, value_parser = parse_format)]
    access_token_format: Option<AccessTokenFormat>,
    #[arg(long)]
    refresh_without_offline_access: Option<bool>,
    /// Replaces the registered resources.
    #[arg(long = "resource", value_name = "URI")]
    resources: Vec<String>,
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// Replaces the registered request URIs.
    #[arg(long = "request-uri", value_name = "URL")]
    request_uris: Vec<String>,
    #[arg(long)]
    introspection: Option<bool>,
    /// Replaces the registered web origins (CORS).
    #[arg(long = "web-origin", value_name = "ORIGIN")]
    web_origins: Vec<String>,
    /// Issue a new client secret (shown once).
    #[arg(long)]
    rotate_secret: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user; the password is read from standard input.
    Add(UserAdd),
    /// Change a user; options not given stay as they are.
    Update(UserUpdate),
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a user by username or id.
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from standard input); ends the user's sessions.
    SetPassword {
        user: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user with their sessions, consents and tokens.
    Remove { user: String },
    /// Forget the user's consent for a client and revoke every token the client holds for them.
    RevokeConsent {
        user: String,
        // Client ids made before ids were kept from starting with '-' may start with one.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
    },
    /// End every session of the user and revoke all their tokens.
    SignOutEverywhere { user: String },
}

#[derive(Args)]
struct UserAdd {
    #[arg(long)]
    username: String,
    #[arg(long, required = true)]
    password_stdin: bool,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    email_verified: bool,
    #[arg(long)]
    name: Option<String>,
    /// A standard claim, key=value (repeatable).
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    claims: Vec<String>,
    /// A JSON object of OpenID standard claims.
    #[arg(long, value_name = "FILE")]
    claims_json: Option<PathBuf>,
    /// A group the user belongs to (repeatable; the group must exist).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("change").required(true).args(["groups", "no_groups"])))]
struct UserUpdate {
    /// Username or id.
    user: String,
    /// Set the user's groups to exactly these (repeatable; each must exist).
    #[arg(long = "group", value_name = "GROUP", conflicts_with = "no_groups")]
    groups: Vec<String>,
    /// Take the user out of every group.
    #[arg(long)]
    no_groups: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create a group.
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List groups with their member counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a group with its memberships and the roles granted to it.
    Remove { name: String },
}

/// A role and who holds it: one user or one group, for every client or one.
#[derive(Args)]
#[command(group(ArgGroup::new("holder").required(true).args(["user", "group"])))]
struct RoleArgs {
    role: String,
    /// A user (username or id).
    #[arg(long)]
    user: Option<String>,
    /// A group: every member holds the role.
    #[arg(long)]
    group: Option<String>,
    /// Only in tokens for this client (default: for every client).
    // Client ids made before ids were kept from starting with '-' may start with one.
    #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
    client: Option<String>,
}

#[derive(Subcommand)]
enum RoleCmd {
    /// Grant a role to a user or a group (granting it again changes nothing).
    Grant(RoleArgs),
    /// Revoke a role grant made with the same arguments.
    Revoke(RoleArgs),
    /// List role grants: all, those that reach a user (their own and their groups'), or a group's.
    List {
        #[arg(long, conflicts_with = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RegistrationCmd {
    /// Create a single-use initial access token for POST /register (registration.policy =
    /// initial_access_token). Shown this once; Latchkey keeps only its hash.
    Token {
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 86400)]
        expires_in: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish new keys now; they sign after signing.rotation_delay.
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt everything sealed under the master key with LATCHKEY_NEW_MASTER_KEY.
    Rewrap {
        /// Generate the new master key (printed once) instead of reading LATCHKEY_NEW_MASTER_KEY.
        #[arg(long)]
        generate: bool,
        #[arg(long)]
        json: bool,
    },
}

fn parse_auth_method(s: &str) -> Result<ClientAuthMethod, String> {
    s.parse()
}
fn parse_grant_type(s: &str) -> Result<GrantType, String> {
    s.parse()
}
fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    s.parse()
}
fn parse_format(s: &str) -> Result<AccessTokenFormat, String> {
    s.parse()
}

fn read_jwks(p: &std::path::Path) -> Result<String, Fail> {
    let text = std::fs::read_to_string(p).map_err(|e| usage(format!("--jwks {}: {e}", p.display())))?;
    check_jwks(&text).map_err(|e| usage(format!("--jwks {}: {e}", p.display())))?;
    Ok(text)
}

/// A public JWK Set: valid JSON with keys, and no private members.
fn check_jwks(text: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let keys = v.get("keys").and_then(Value::as_array).ok_or("not a JWK Set (no \"keys\" array)")?;
    if keys.is_empty() {
        return Err("the JWK Set has no keys".into());
    }
    for k in keys {
        if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| k.get(*m).is_some()) {
            return Err("the JWK Set holds private key material; register public keys only".into());
        }
    }
    josekit::jwk::JwkSet::from_bytes(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(())
}

/// A failure and its exit code.
struct Fail {
    code: u8,
    msg: String,
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail { code: 2, msg: msg.into() }
}
fn runtime(msg: impl std::fmt::Display) -> Fail {
    Fail { code: 1, msg: msg.to_string() }
}

impl From<StartupError> for Fail {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Config(m) => Fail { code: 2, msg: m },
            other => runtime(other),
        }
    }
}

impl From<latchkey_storage::StoreError> for Fail {
    fn from(e: latchkey_storage::StoreError) -> Self {
        runtime(e)
    }
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

fn master_key(settings: &Settings) -> Result<MasterKey, Fail> {
    let env = std::env::var("LATCHKEY_MASTER_KEY").ok();
    MasterKey::load(env.as_deref(), &settings.data_dir).map_err(runtime)
}

async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, Fail> {
    latchkey_storage::open(settings)
        .await
        .map_err(|e| runtime(format!("cannot open database {}: {e}", redact(&settings.effective_database_url()))))
}

async fn run(cmd: Command, settings: Settings) -> Result<(), Fail> {
    match cmd {
        Command::Serve { demo } => serve(settings, demo).await,
        Command::Migrate => {
            open_store(&settings).await?.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::Client(c) => client(c, &settings).await,
        Command::User(u) => user(u, &settings).await,
        Command::Group(g) => group(g, &settings).await,
        Command::Role(r) => role(r, &settings).await,
        Command::Keys(k) => keys(k, &settings).await,
        Command::Registration(r) => registration(r, &settings).await,
        Command::Backup { file } => backup(&settings, &file).await,
        Command::Audit { since, user, kind, limit, json } => {
            audit_log(&settings, since.as_deref(), user.as_deref(), kind.as_deref(), limit, json).await
        }
    }
}

async fn backup(settings: &Settings, file: &std::path::Path) -> Result<(), Fail> {
    match settings.backend().map_err(|e| usage(e.to_string()))? {
        latchkey_core::settings::Backend::Postgres => {
            Err(usage("latchkey backup supports SQLite only; back up PostgreSQL with `pg_dump -Fc`"))
        }
        latchkey_core::settings::Backend::Sqlite => {
            if file.exists() {
                return Err(usage(format!("{} already exists; choose a new file", file.display())));
            }
            let store = latchkey_storage::sqlite::SqliteStore::open(settings).await.map_err(|e| {
                runtime(format!("cannot open database {}: {e}", redact(&settings.effective_database_url())))
            })?;
            let r = store.backup_into(file).await;
            store.pool().close().await;
            r.map_err(|e| runtime(format!("backup to {} failed: {e}", file.display())))?;
            println!("backed up to {} (the master key is not in it: back it up separately)", file.display());
            Ok(())
        }
    }
}

/// `--since`: RFC 3339 or Unix seconds.
fn parse_since(s: &str) -> Result<UnixTime, Fail> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| usage(format!("--since `{s}` is neither RFC 3339 nor Unix seconds")))
}

async fn audit_log(
    settings: &Settings,
    since: Option<&str>,
    user: Option<&str>,
    kind: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), Fail> {
    let since = since.map(parse_since).transpose()?.unwrap_or(0);
    let store = open_store(settings).await?;
    // A user is named by username or id; events carry the id as actor and either in detail.user.
    let mut names: Vec<String> = Vec::new();
    if let Some(u) = user {
        names.push(u.to_owned());
        let found = match store.get_user_by_username(u).await? {
            Some(x) => Some(x),
            None => store.get_user(u).await?,
        };
        if let Some(x) = found {
            names.push(x.id);
            names.push(x.username);
        }
    }
    let events = store.list_audit(since, i64::MAX).await?;
    store.close().await;
    let mut out = Vec::new();
    for e in events {
        if kind.is_some_and(|k| k != e.kind) {
            continue;
        }
        let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
        if user.is_some() {
            let du = detail.get("user").and_then(Value::as_str);
            let hit = names.iter().any(|n| Some(n.as_str()) == e.actor.as_deref() || Some(n.as_str()) == du);
            if !hit {
                continue;
            }
        }
        out.push(json!({"at": e.at, "kind": e.kind, "actor": e.actor, "client_id": e.client_id, "ip": e.ip, "detail": detail}));
        if out.len() >= limit {
            break;
        }
    }
    if json {
        print_json(&Value::Array(out))?;
    } else {
        for e in &out {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            let detail = e.get("detail").map(Value::to_string).unwrap_or_default();
            println!("{at}\t{}\t{}\t{}\t{}\t{detail}", s("kind"), s("actor"), s("client_id"), s("ip"));
        }
    }
    Ok(())
}

async fn serve(settings: Settings, demo: bool) -> Result<(), Fail> {
    let master = master_key(&settings)?;
    let bind = settings.bind.clone();
    let listener = server::bind(&bind).await?;
    let state = server::build_state(settings, Arc::new(SystemClock), master).await?;
    let demo_info = if demo { Some(crate::demo::setup(&state).await.map_err(runtime)?) } else { None };
    let srv = server::Server::spawn_with(state, listener, demo_info.as_ref())?;
    if let Some(info) = &demo_info {
        print_demo(&srv.state.settings, info);
    }
    match srv.metrics_addr {
        Some(m) => {
            tracing::info!(addr = %srv.addr, metrics = %m, issuer = %srv.state.settings.issuer, "latchkey is serving")
        }
        None => tracing::info!(addr = %srv.addr, issuer = %srv.state.settings.issuer, "latchkey is serving"),
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    srv.shutdown().await;
    Ok(())
}

fn print_demo(settings: &Settings, info: &crate::demo::DemoInfo) {
    println!();
    println!("  Latchkey demo is ready: open {}", settings.endpoint("/demo"));
    println!("  username: {}", crate::demo::DEMO_USERNAME);
    match &info.new_password {
        Some(p) => println!(
            "  password: {p}   (shown this once; change it with `latchkey user set-password demo --password-stdin`)"
        ),
        None => println!("  password: as printed when the demo user was created"),
    }
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn print_json(v: &Value) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v).map_err(runtime)?;
    writeln!(out).map_err(runtime)
}

fn client_json(c: &Client) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.name,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": c.scopes.join(" "),
        "skip_consent": c.skip_consent,
        "require_pkce": c.require_pkce || c.is_public(),
        "id_token_signed_response_alg": c.id_token_signed_response_alg.map(|a| a.as_str()),
        "access_token_format": c.access_token_format.map(|f| f.as_str()),
        "refresh_without_offline_access": c.refresh_without_offline_access,
        "resources": c.resources,
        "jwks_uri": c.jwks_uri,
        "has_jwks": c.jwks.is_some(),
        "request_uris": c.request_uris,
        "introspection": c.introspection,
        "web_origins": latchkey_web::cors::origins_of(c).origins,
        "created_at": c.created_at,
    })
}

fn check_client(c: &Client, dev_mode: bool) -> Result<(), Fail> {
    if c.name.trim().is_empty() {
        return Err(usage("--name must not be empty"));
    }
    for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
        validate_for_registration(u).map_err(|e| usage(format!("{e}: {u}")))?;
    }
    if c.grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        return Err(usage("the authorization_code grant needs at least one --redirect-uri"));
    }
    if c.grant_types.contains(&GrantType::ClientCredentials) && c.is_public() {
        return Err(usage("public clients cannot use the client_credentials grant"));
    }
    if c.grant_types.contains(&GrantType::RefreshToken) && !c.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(usage("the refresh_token grant needs the authorization_code grant"));
    }
    if c.grant_types.is_empty() {
        return Err(usage("a client needs at least one grant type"));
    }
    if c.auth_method == ClientAuthMethod::PrivateKeyJwt && c.jwks.is_none() && c.jwks_uri.is_none() {
        return Err(usage("private_key_jwt needs --jwks FILE or --jwks-uri URL"));
    }
    if c.jwks.is_some() && c.jwks_uri.is_some() {
        return Err(usage("give --jwks or --jwks-uri, not both"));
    }
    if let Some(u) = &c.jwks_uri {
        let ok = url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" || (dev_mode && p.scheme() == "http"));
        if !ok {
            return Err(usage(format!("--jwks-uri must be an https URL: {u}")));
        }
    }
    for u in &c.request_uris {
        let ok = url::Url::parse(u).is_ok_and(|p| p.scheme() == "https" || (dev_mode && p.scheme() == "http"));
        if !ok || u.len() > 512 {
            return Err(usage(format!("--request-uri must be an https URL of at most 512 characters: {u}")));
        }
    }
    for r in &c.resources {
        if url::Url::parse(r).map_or(true, |u| u.fragment().is_some()) {
            return Err(usage(format!("--resource must be an absolute URI without a fragment: {r}")));
        }
    }
    Ok(())
}

fn parse_scopes(s: &str) -> Result<Vec<String>, Fail> {
    let scope = Scope::parse(s).map_err(|e| usage(format!("--scope: {e}")))?;
    Ok(scope.iter().map(str::to_owned).collect())
}

async fn client(cmd: ClientCmd, settings: &Settings) -> Result<(), Fail> {
    let now = SystemClock.now();
    match cmd {
        ClientCmd::Add(a) => {
            let auth_method = match (a.public, a.auth_method) {
                (true, None | Some(ClientAuthMethod::None)) => ClientAuthMethod::None,
                (true, Some(m)) => return Err(usage(format!("--public conflicts with --auth-method {m}"))),
                (false, Some(m)) => m,
                (false, None) => ClientAuthMethod::ClientSecretBasic,
            };
            let grant_types = if a.grant_types.is_empty() {
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else {
                dedup(a.grant_types)
            };
            let secret = auth_method.uses_secret().then(SecretToken::generate);
            let jwks = a.jwks.as_deref().map(read_jwks).transpose()?;
            let client_id = Client::generate_id();
            let secret_enc = match (&secret, auth_method) {
                (Some(s), ClientAuthMethod::ClientSecretJwt) => Some(
                    master_key(settings)?
                        .encrypt(s.expose().as_bytes(), &format!("client_secret:{client_id}"))
                        .map_err(runtime)?,
                ),
                _ => None,
            };
            let c = Client {
                client_id,
                name: a.name,
                secret_hash: secret.as_ref().map(SecretToken::hash),
                redirect_uris: a.redirect_uris,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                auth_method,
                grant_types,
                scopes: parse_scopes(&a.scope)?,
                skip_consent: a.skip_consent,
                require_pkce: a.require_pkce || auth_method == ClientAuthMethod::None,
                id_token_signed_response_alg: a.id_token_signed_response_alg,
                access_token_format: a.access_token_format,
                refresh_without_offline_access: a.refresh_without_offline_access,
                resources: a.resources,
                jwks,
                jwks_uri: a.jwks_uri,
                request_uris: dedup(a.request_uris),
                secret_enc,
                introspection: a.introspection,
                created_at: now,
                updated_at: now,
                ..Default::default()
            };
            let mut c = c;
            set_web_origins(&mut c, a.web_origins)?;
            check_client(&c, settings.development_mode)?;
            if let Some(alg) = c.id_token_signed_response_alg
                && !settings.signing_algorithms().unwrap_or_default().contains(&alg)
            {
                return Err(usage(format!("{alg} is not in signing.algorithms")));
            }
            let store = open_store(settings).await?;
            if store.create_client(&c).await? == Created::AlreadyExists {
                return Err(runtime("client id collision; try again"));
            }
            audit(store.as_ref(), "client.registered", Some(&c.client_id), json!({"name": c.name})).await;
            if a.json {
                let mut v = client_json(&c);
                if let (Some(s), Some(obj)) = (&secret, v.as_object_mut()) {
                    obj.insert("client_secret".into(), Value::String(s.expose().to_owned()));
                }
                print_json(&v)?;
            } else {
                println!("client_id:     {}", c.client_id);
                if let Some(s) = &secret {
                    println!("client_secret: {}", s.expose());
                    println!("(the secret is shown this once only; Latchkey keeps only its hash)");
                }
            }
            store.close().await;
            Ok(())
        }
        ClientCmd::List { json } => {
            let store = open_store(settings).await?;
            let clients = store.list_clients().await?;
            if json {
                print_json(&Value::Array(clients.iter().map(client_json).collect()))?;
            } else {
                for c in &clients {
                    println!("{}\t{}\t{}", c.client_id, c.auth_method, c.name);
                }
            }
            Ok(())
        }
        ClientCmd::Show { client_id, json } => {
            let store = open_store(settings).await?;
            let c = store.get_client(&client_id).await?.ok_or_else(|| runtime(format!("no client `{client_id}`")))?;
            if json {
                print_json(&client_json(&c))?;
            } else {
                print_pretty(&client_json(&c));
            }
            Ok(())
        }
        ClientCmd::Update(u) => {
            let store = open_store(settings).await?;
            let mut c =
                store.get_client(&u.client_id).await?.ok_or_else(|| runtime(format!("no client `{}`", u.client_id)))?;
            if let Some(n) = u.name {
                c.name = n;
            }
            if !u.redirect_uris.is_empty() {
                c.redirect_uris = u.redirect_uris;
            }
            if !u.post_logout_redirect_uris.is_empty() {
                c.post_logout_redirect_uris = u.post_logout_redirect_uris;
            }
            if !u.grant_types.is_empty() {
                c.grant_types = dedup(u.grant_types);
            }
            if let Some(s) = u.scope {
                c.scopes = parse_scopes(&s)?;
            }
            if let Some(v) = u.skip_consent {
                c.skip_consent = v;
            }
            if let Some(v) = u.require_pkce {
                c.require_pkce = v || c.is_public();
            }
            if let Some(a) = u.id_token_signed_response_alg {
                c.id_token_signed_response_alg = Some(a);
            }
            if let Some(f) = u.access_token_format {
                c.access_token_format = Some(f);
            }
            if let Some(v) = u.refresh_without_offline_access {
                c.refresh_without_offline_access = v;
            }
            if !u.resources.is_empty() {
                c.resources = u.resources;
            }
            if let Some(p) = &u.jwks {
                c.jwks = Some(read_jwks(p)?);
            }
            if let Some(uri) = u.jwks_uri {
                c.jwks_uri = Some(uri);
            }
            if !u.request_uris.is_empty() {
                c.request_uris = dedup(u.request_uris);
            }
            if let Some(v) = u.introspection {
                c.introspection = v;
            }
            if !u.web_origins.is_empty() {
                set_web_origins(&mut c, u.web_origins)?;
            }
            let secret = if u.rotate_secret {
                if !c.auth_method.uses_secret() {
                    return Err(usage("--rotate-secret: this client does not use a secret"));
                }
                let s = SecretToken::generate();
                c.secret_hash = Some(s.hash());
                if c.auth_method == ClientAuthMethod::ClientSecretJwt {
                    c.secret_enc = Some(
                        master_key(settings)?
                            .encrypt(s.expose().as_bytes(), &format!("client_secret:{}", c.client_id))
                            .map_err(runtime)?,
                    );
                }
                Some(s)
            } else {
                None
            };
            c.updated_at = now;
            check_client(&c, settings.development_mode)?;
            store.update_client(&c).await?;
            audit(store.as_ref(), "client.updated", Some(&c.client_id), json!({})).await;
            let mut v = client_json(&c);
            if let (Some(s), Some(obj)) = (&secret, v.as_object_mut()) {
                obj.insert("client_secret".into(), Value::String(s.expose().to_owned()));
            }
            if u.json {
                print_json(&v)?
            } else {
                print_pretty(&v)
            }
            Ok(())
        }
        ClientCmd::Remove { client_id } => {
            let store = open_store(settings).await?;
            if !store.delete_client(&client_id).await? {
                return Err(runtime(format!("no client `{client_id}`")));
            }
            audit(store.as_ref(), "client.removed", Some(&client_id), json!({})).await;
            println!("removed client {client_id}");
            Ok(())
        }
    }
}

/// Registered web origins (CORS): each exactly `scheme://host[:port]`.
fn set_web_origins(c: &mut Client, origins: Vec<String>) -> Result<(), Fail> {
    if origins.is_empty() {
        return Ok(());
    }
    for o in &origins {
        if latchkey_web::cors::origin_of(o).as_deref() != Some(o.as_str()) {
            return Err(usage(format!("--web-origin must be an origin like https://app.example, not {o}")));
        }
    }
    c.metadata.insert("web_origins".into(), Value::from(dedup(origins)));
    Ok(())
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn print_pretty(v: &Value) {
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k}: {shown}");
        }
    }
}

async fn audit(store: &dyn Store, kind: &str, client_id: Option<&str>, detail: Value) {
    let e = latchkey_storage::AuditEvent {
        at: SystemClock.now(),
        kind: kind.into(),
        actor: Some("cli".into()),
        client_id: client_id.map(str::to_owned),
        ip: None,
        detail: detail.to_string(),
    };
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "could not record audit event");
    }
}

/// One line from standard input, without the line ending.
fn read_password() -> Result<zeroize::Zeroizing<String>, Fail> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| runtime(format!("cannot read the password: {e}")))?;
    let pw = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    if pw.is_empty() {
        return Err(usage("the password on standard input is empty"));
    }
    if pw.len() > 1024 {
        return Err(usage("the password is longer than 1024 bytes"));
    }
    Ok(pw)
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "sub": u.id,
        "username": u.username,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "claims": u.claims,
        "created_at": u.created_at,
    })
}

fn claim_value(key: &str, raw: &str) -> Value {
    match key {
        "phone_number_verified" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        "updated_at" => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

async fn find_user(store: &dyn Store, key: &str) -> Result<User, Fail> {
    if let Some(u) = store.get_user_by_username(key).await? {
        return Ok(u);
    }
    store.get_user(key).await?.ok_or_else(|| runtime(format!("no user `{}`", one_line(key))))
}

/// A name as typed, for an error message: control characters escaped, so it stays one line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn hasher(settings: &Settings) -> Result<latchkey_web::Passwords, Fail> {
    latchkey_web::Passwords::new(&settings.argon2).map_err(runtime)
}

/// Back-Channel Logout 1.0: queue logout tokens for every session of a user that a command
/// ends; the running server delivers them (or the next one to start). Needs the signing keys,
/// so the master key.
async fn user_sessions_ended(
    store: &dyn Store,
    settings: &Settings,
    user_id: &str,
    now: latchkey_core::UnixTime,
) -> Result<usize, Fail> {
    let master = master_key(settings)?;
    let ring = latchkey_signer::bootstrap(store, settings, &master, now).await.map_err(runtime)?;
    let salt = latchkey_signer::pairwise_salt(store, &master).await.map_err(runtime)?;
    latchkey_web::backchannel::user_sessions_ended(store, &ring, settings, &salt, user_id, now).await.map_err(runtime)
}

async fn user(cmd: UserCmd, settings: &Settings) -> Result<(), Fail> {
    let now = SystemClock.now();
    match cmd {
        UserCmd::Add(a) => {
            if a.username.trim().is_empty() || a.username.len() > 255 || a.username.chars().any(char::is_control) {
                return Err(usage("--username must be 1-255 printable characters"));
            }
            let mut claims = serde_json::Map::new();
            if let Some(p) = &a.claims_json {
                let text =
                    std::fs::read_to_string(p).map_err(|e| usage(format!("--claims-json {}: {e}", p.display())))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => claims = m,
                    Ok(_) => return Err(usage("--claims-json must hold a JSON object")),
                    Err(e) => return Err(usage(format!("--claims-json {}: {e}", p.display()))),
                }
            }
            for kv in &a.claims {
                let (k, v) = kv.split_once('=').ok_or_else(|| usage(format!("--claim `{kv}` is not key=value")))?;
                claims.insert(k.to_owned(), claim_value(k, v));
            }
            validate_user_claims(&claims).map_err(usage)?;
            let groups = group_names(&a.groups)?;
            let pw = read_password()?;
            let hash = hasher(settings)?.hash_blocking(&pw).map_err(runtime)?;
            let u = User {
                id: uuid::Uuid::new_v4().to_string(),
                username: a.username,
                password_hash: hash,
                email: a.email,
                email_verified: a.email_verified,
                name: a.name,
                claims,
                created_at: now,
                updated_at: now,
            };
            let store = open_store(settings).await?;
            // Every group must exist before the user is created.
            for g in &groups {
                find_group(store.as_ref(), g).await?;
            }
            if store.create_user(&u).await? == Created::AlreadyExists {
                return Err(usage(format!("username `{}` is taken", u.username)));
            }
            let mut detail = serde_json::Map::new();
            detail.insert("user".into(), json!(u.id));
            if !groups.is_empty() {
                store.set_user_groups(&u.id, &groups).await?.map_err(|g| runtime(format!("no group `{g}`")))?;
                detail.insert("groups".into(), json!(groups));
            }
            let detail = Value::Object(detail);
            audit(store.as_ref(), "user.created", None, detail).await;
            if a.json {
                print_json(&with_groups(user_json(&u), &groups))?;
            } else {
                println!("created user {} (sub {})", u.username, u.id);
            }
            Ok(())
        }
        UserCmd::Update(a) => {
            let groups = group_names(&a.groups)?;
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &a.user).await?;
            // `--group` (required unless --no-groups) replaces the memberships; --no-groups clears them.
            store.set_user_groups(&u.id, &groups).await?.map_err(|g| runtime(format!("no group `{g}`")))?;
            audit(store.as_ref(), "user.groups_set", None, json!({"user": u.id, "groups": groups})).await;
            if a.json {
                print_json(&with_groups(user_json(&u), &groups))?;
            } else if groups.is_empty() {
                println!("{} belongs to no group", u.username);
            } else {
                println!("groups of {}: {}", u.username, groups.join(", "));
            }
            Ok(())
        }
        UserCmd::List { json } => {
            let store = open_store(settings).await?;
            let users = store.list_users().await?;
            if json {
                print_json(&Value::Array(users.iter().map(user_json).collect()))?;
            } else {
                for u in &users {
                    println!("{}\t{}", u.id, u.username);
                }
            }
            Ok(())
        }
        UserCmd::Show { user, json } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let v = with_groups(user_json(&u), &store.list_user_groups(&u.id).await?);
            if json {
                print_json(&v)?
            } else {
                print_pretty(&v)
            }
            Ok(())
        }
        UserCmd::SetPassword { user, .. } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let pw = read_password()?;
            let hash = hasher(settings)?.hash_blocking(&pw).map_err(runtime)?;
            // set_password ends the sessions: their relying parties are told first.
            let told = user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            store.set_password(&u.id, &hash, now).await?;
            audit(store.as_ref(), "user.password_set", None, json!({"user": u.id})).await;
            println!(
                "password changed for {}; their sessions have ended ({told} back-channel logouts queued)",
                u.username
            );
            Ok(())
        }
        UserCmd::RevokeConsent { user, client } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let had = store.delete_consent(&u.id, &client).await?;
            let n = store.revoke_user_grants(&u.id, Some(&client), now).await?;
            audit(store.as_ref(), "consent.revoked", Some(&client), json!({"user": u.id, "grants_revoked": n})).await;
            println!(
                "{} consent of {} for {client}; {n} token families revoked",
                if had { "removed" } else { "no" },
                u.username
            );
            Ok(())
        }
        UserCmd::SignOutEverywhere { user } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let told = user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            let sessions = store.delete_user_sessions(&u.id).await?;
            let n = store.revoke_user_grants(&u.id, None, now).await?;
            audit(store.as_ref(), "user.signed_out_everywhere", None, json!({"user": u.id})).await;
            println!(
                "{} sessions ended, {n} token families revoked, {told} back-channel logouts queued for {}",
                sessions.len(),
                u.username
            );
            Ok(())
        }
        UserCmd::Remove { user } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            // Before deletion: the user's sessions end with it, and their relying parties are told.
            user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            store.delete_user(&u.id).await?;
            audit(store.as_ref(), "user.removed", None, json!({"user": u.id})).await;
            println!("removed user {}", u.username);
            Ok(())
        }
    }
}

/// `--group` values: valid names, each once, sorted.
fn group_names(names: &[String]) -> Result<Vec<String>, Fail> {
    for n in names {
        validate_name("group", n).map_err(|e| usage(format!("--group: {e}")))?;
    }
    let mut v = dedup(names.to_vec());
    v.sort();
    Ok(v)
}

fn with_groups(mut v: Value, groups: &[String]) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("groups".into(), json!(groups));
    }
    v
}

async fn find_group(store: &dyn Store, name: &str) -> Result<Group, Fail> {
    validate_name("group", name).map_err(usage)?;
    store.get_group_by_name(name).await?.ok_or_else(|| runtime(format!("no group `{name}`")))
}

async fn group(cmd: GroupCmd, settings: &Settings) -> Result<(), Fail> {
    match cmd {
        GroupCmd::Add { name, json } => {
            validate_name("group", &name).map_err(usage)?;
            let g = Group { id: uuid::Uuid::new_v4().to_string(), name, created_at: SystemClock.now() };
            let store = open_store(settings).await?;
            if store.create_group(&g).await? == Created::AlreadyExists {
                return Err(usage(format!("group `{}` exists", g.name)));
            }
            audit(store.as_ref(), "group.created", None, json!({"group": g.name})).await;
            if json {
                print_json(&json!({"id": g.id, "name": g.name, "members": 0, "created_at": g.created_at}))?;
            } else {
                println!("created group {}", g.name);
            }
            Ok(())
        }
        GroupCmd::List { json } => {
            let store = open_store(settings).await?;
            let groups = store.list_groups().await?;
            if json {
                let list: Vec<Value> = groups
                    .iter()
                    .map(|s| {
                        json!({"id": s.group.id, "name": s.group.name, "members": s.members, "created_at": s.group.created_at})
                    })
                    .collect();
                print_json(&Value::Array(list))?;
            } else {
                for s in &groups {
                    println!("{}\t{}", s.group.name, s.members);
                }
            }
            Ok(())
        }
        GroupCmd::Remove { name } => {
            validate_name("group", &name).map_err(usage)?;
            let store = open_store(settings).await?;
            if !store.delete_group(&name).await? {
                return Err(runtime(format!("no group `{name}`")));
            }
            audit(store.as_ref(), "group.removed", None, json!({"group": name})).await;
            println!("removed group {name}");
            Ok(())
        }
    }
}

/// A role grant named on the command line, resolved against the database; with its audit
/// detail and its description.
async fn role_grant(store: &dyn Store, a: &RoleArgs) -> Result<(RoleGrant, Value, String), Fail> {
    let (holder, mut detail, who) = match (&a.user, &a.group) {
        (Some(u), None) => {
            let u = find_user(store, u).await?;
            (RoleHolder::User(u.id.clone()), json!({"role": a.role, "user": u.id}), format!("user {}", u.username))
        }
        (None, Some(g)) => {
            let g = find_group(store, g).await?;
            (RoleHolder::Group(g.id), json!({"role": a.role, "group": g.name}), format!("group {}", g.name))
        }
        // clap's `holder` group requires exactly one of them.
        _ => return Err(usage("give --user or --group")),
    };
    if let Some(c) = &a.client {
        store.get_client(c).await?.ok_or_else(|| runtime(format!("no client `{}`", one_line(c))))?;
        if let Some(o) = detail.as_object_mut() {
            o.insert("client_id".into(), json!(c));
        }
    }
    let scope = match &a.client {
        Some(c) => format!("for client {c}"),
        None => "for every client".to_owned(),
    };
    let grant = RoleGrant { role: a.role.clone(), holder, client_id: a.client.clone() };
    Ok((grant, detail, format!("role {} of {who} {scope}", a.role)))
}

fn check_role_args(a: &RoleArgs) -> Result<(), Fail> {
    validate_name("role", &a.role).map_err(usage)?;
    if let Some(g) = &a.group {
        validate_name("group", g).map_err(|e| usage(format!("--group: {e}")))?;
    }
    Ok(())
}

async fn role(cmd: RoleCmd, settings: &Settings) -> Result<(), Fail> {
    match cmd {
        RoleCmd::Grant(a) => {
            check_role_args(&a)?;
            let store = open_store(settings).await?;
            let (grant, detail, what) = role_grant(store.as_ref(), &a).await?;
            match store.grant_role(&grant, SystemClock.now()).await? {
                Created::Created => {
                    audit(store.as_ref(), "role.granted", a.client.as_deref(), detail).await;
                    println!("granted {what}");
                }
                Created::AlreadyExists => println!("already granted: {what}"),
            }
            Ok(())
        }
        RoleCmd::Revoke(a) => {
            check_role_args(&a)?;
            let store = open_store(settings).await?;
            let (grant, detail, what) = role_grant(store.as_ref(), &a).await?;
            if !store.revoke_role(&grant).await? {
                return Err(runtime(format!("no such grant: {what}")));
            }
            audit(store.as_ref(), "role.revoked", a.client.as_deref(), detail).await;
            println!("revoked {what}");
            Ok(())
        }
        RoleCmd::List { user, group, json } => {
            let store = open_store(settings).await?;
            let grants = match (&user, &group) {
                (Some(u), _) => {
                    let u = find_user(store.as_ref(), u).await?;
                    store.list_role_grants(RoleFilter::User(&u.id)).await?
                }
                (None, Some(g)) => {
                    let g = find_group(store.as_ref(), g).await?;
                    store.list_role_grants(RoleFilter::Group(&g.id)).await?
                }
                (None, None) => store.list_role_grants(RoleFilter::All).await?,
            };
            if json {
                let list: Vec<Value> = grants
                    .iter()
                    .map(|g| json!({"role": g.role, "user": g.username, "group": g.group, "client_id": g.client_id, "created_at": g.created_at}))
                    .collect();
                print_json(&Value::Array(list))?;
            } else {
                for g in &grants {
                    let holder = match (&g.username, &g.group) {
                        (Some(u), _) => format!("user:{u}"),
                        (None, Some(n)) => format!("group:{n}"),
                        (None, None) => "-".to_owned(),
                    };
                    println!("{}\t{holder}\t{}", g.role, g.client_id.as_deref().unwrap_or("*"));
                }
            }
            Ok(())
        }
    }
}

/// Longest lifetime of an initial access token: one year.
const MAX_INITIAL_TOKEN_LIFETIME: i64 = 365 * 86400;

async fn registration(cmd: RegistrationCmd, settings: &Settings) -> Result<(), Fail> {
    match cmd {
        RegistrationCmd::Token { expires_in, json } => {
            if !(1..=MAX_INITIAL_TOKEN_LIFETIME).contains(&expires_in) {
                return Err(usage(format!("--expires-in must be between 1 and {MAX_INITIAL_TOKEN_LIFETIME} seconds")));
            }
            let now = SystemClock.now();
            let expires_at = now + expires_in;
            let token = SecretToken::generate();
            let store = open_store(settings).await?;
            store.create_initial_access_token(&token.hash(), now, expires_at).await?;
            audit(store.as_ref(), "registration.token_created", None, json!({"expires_at": expires_at})).await;
            store.close().await;
            if json {
                print_json(&json!({
                    "initial_access_token": token.expose(),
                    "expires_at": expires_at,
                    "expires_in": expires_in,
                }))?;
            } else {
                println!("initial_access_token: {}", token.expose());
                println!("expires_at:           {expires_at}");
                println!("(shown this once only; it registers one client at POST /register)");
                if settings.registration.policy != "initial_access_token" {
                    println!(
                        "note: registration.policy is `{}`; the token is required only with `initial_access_token`",
                        settings.registration.policy
                    );
                }
            }
            Ok(())
        }
    }
}

/// The new master key for `keys rewrap`: generated, or LATCHKEY_NEW_MASTER_KEY.
fn new_master_key(generate: bool) -> Result<MasterKey, Fail> {
    let env = std::env::var("LATCHKEY_NEW_MASTER_KEY").ok();
    match (generate, env) {
        (true, Some(_)) => Err(usage("give either --generate or LATCHKEY_NEW_MASTER_KEY, not both")),
        (true, None) => Ok(MasterKey::generate()),
        (false, Some(v)) => {
            MasterKey::parse(&v).ok_or_else(|| usage("LATCHKEY_NEW_MASTER_KEY must be 32 random bytes, base64-encoded"))
        }
        (false, None) => Err(usage("set LATCHKEY_NEW_MASTER_KEY (base64 of 32 bytes) or pass --generate")),
    }
}

/// Write `key` to a fresh temp file (mode 0600) next to the key file; renamed over it after commit.
fn stage_key_file(settings: &Settings, key: &MasterKey) -> Result<PathBuf, Fail> {
    use std::io::Write;
    let tmp = settings.data_dir.join(format!("{}.new-{}", latchkey_signer::KEY_FILE, std::process::id()));
    let err = |e: std::io::Error| runtime(format!("cannot write {}: {e}; nothing was changed", tmp.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(format!("{}\n", key.encode()).as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(tmp)
}

async fn rewrap(settings: &Settings, generate: bool, json: bool) -> Result<(), Fail> {
    let new = new_master_key(generate)?;
    let master = master_key(settings)?;
    let from_file = std::env::var_os("LATCHKEY_MASTER_KEY").is_none();
    let store = open_store(settings).await?;
    // The new key file is staged before the commit and renamed over the old one after it.
    let staged = if from_file { Some(stage_key_file(settings, &new)?) } else { None };
    let done = latchkey_signer::rewrap(store.as_ref(), &master, &new).await;
    let counts = match done {
        Ok(c) => c,
        Err(e) => {
            if let Some(t) = &staged {
                let _ = std::fs::remove_file(t);
            }
            store.close().await;
            return Err(runtime(e));
        }
    };
    if let Some(t) = &staged {
        let path = settings.data_dir.join(latchkey_signer::KEY_FILE);
        std::fs::rename(t, &path).map_err(|e| {
            runtime(format!(
                "the database now uses the new master key, but {} could not replace {}: {e}; move it there by hand",
                t.display(),
                path.display()
            ))
        })?;
    }
    let detail = json!({"keys": counts.keys, "client_secrets": counts.client_secrets, "meta": counts.meta});
    audit(store.as_ref(), "keys.rewrapped", None, detail.clone()).await;
    store.close().await;
    let shown = if generate { Some(new.encode()) } else { None };
    if json {
        let mut v = detail;
        if let (Some(k), Some(o)) = (&shown, v.as_object_mut()) {
            o.insert("new_master_key".into(), Value::String(k.clone()));
        }
        print_json(&v)?;
    } else {
        println!(
            "re-encrypted {} signing keys, {} client secrets and {} stored values under the new master key",
            counts.keys, counts.client_secrets, counts.meta
        );
        if let Some(k) = &shown {
            println!("new master key (shown once): {k}");
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCmd, settings: &Settings) -> Result<(), Fail> {
    if let KeysCmd::Rewrap { generate, json } = cmd {
        return rewrap(settings, generate, json).await;
    }
    let master = master_key(settings)?;
    let store = open_store(settings).await?;
    let now = SystemClock.now();
    match cmd {
        KeysCmd::List { json } => {
            let ring = latchkey_signer::bootstrap(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            let list = ring.summaries(now);
            if json {
                print_json(&serde_json::to_value(&list).map_err(runtime)?)?;
            } else {
                for k in &list {
                    println!("{}\t{}\t{}\tactivates {}", k.kid, k.alg, k.state, k.activates_at);
                }
            }
        }
        KeysCmd::Rotate { json } => {
            latchkey_signer::bootstrap(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            let fresh = latchkey_signer::rotate(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            audit(
                store.as_ref(),
                "keys.rotated",
                None,
                json!({"kids": fresh.iter().map(|k| &k.kid).collect::<Vec<_>>()}),
            )
            .await;
            let list: Vec<Value> =
                fresh.iter().map(|k| json!({"kid": k.kid, "alg": k.alg, "activates_at": k.activates_at})).collect();
            if json {
                print_json(&Value::Array(list))?;
            } else {
                for k in &fresh {
                    println!("new {} key {} published; signs from {}", k.alg, k.kid, k.activates_at);
                }
            }
        }
        KeysCmd::Rewrap { .. } => {}
    }
    store.close().await;
    Ok(())
}
