//! The scenarios: each starts its own server (so its peak RSS and its database are its own),
//! seeds it through the CLI, prepares what the timed phase needs through the real HTTP flows,
//! and runs its lanes.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::client::{Conn, Jar};
use crate::flow::{self, ClientCreds, Code, UserCreds};
use crate::run::{self, CodePool, Job, Lane, LaneStats, REQUEST_TIMEOUT};
use crate::server::{Backend, Server};

/// Every scenario, in the order they run and print.
pub const ALL: &[&str] = &[
    "discovery",
    "jwks",
    "cc-opaque",
    "cc-jwt-rs256",
    "cc-jwt-es256",
    "code-redemption",
    "refresh",
    "refresh-no-id-token",
    "introspection",
    "userinfo",
    "login",
    "mixed",
];

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/jwks.json";
/// Most codes made for one code-redemption run.
const MAX_CODES: usize = 400_000;

pub struct Ctx {
    pub bin: PathBuf,
    pub backend: Backend,
    /// `--server-env`: settings for every server.
    pub server_env: Vec<(String, String)>,
    /// `--mixed-token`: the token traffic of the mixed scenario (a cc-… scenario name).
    pub mixed_token: String,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// `--rate`: requests per second (open loop); None: as fast as the server answers.
    pub rate: Option<f64>,
}

/// One line of the table.
pub struct Row {
    pub stats: LaneStats,
    pub rss_mib: Option<f64>,
}

fn progress(msg: &str) {
    eprintln!("latchkey-bench: {msg}");
}

/// Run one scenario on a server of its own.
pub async fn run(name: &str, ctx: &Ctx) -> Result<Vec<Row>> {
    let mut extra: Vec<(&str, &str)> = ctx.server_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if name == "cc-jwt-es256" || (name == "mixed" && ctx.mixed_token == "cc-jwt-es256") {
        // JWT access tokens are signed with access_token.signing_algorithm (RS256 by default).
        extra.push(("LATCHKEY_ACCESS_TOKEN__SIGNING_ALGORITHM", "ES256"));
    }
    let srv = Server::start(&ctx.bin, &ctx.backend, &extra).await.context("starting the server")?;
    let outcome = lanes_of(name, &srv, ctx).await;
    let rss_mib = srv.peak_rss_mib();
    let log = srv.log_tail();
    srv.stop().await;
    let stats = match outcome {
        Ok(s) => s,
        Err(e) if log.trim().is_empty() => return Err(e),
        Err(e) => return Err(e.context(format!("server log:\n{log}"))),
    };
    Ok(stats.into_iter().map(|stats| Row { stats, rss_mib }).collect())
}

fn lane(name: &str, jobs: impl Iterator<Item = Job>) -> Lane {
    Lane { name: name.to_owned(), jobs: jobs.collect() }
}

async fn timed(srv: &Server, ctx: &Ctx, lanes: Vec<Lane>) -> Result<Vec<LaneStats>> {
    srv.reset_peak_rss();
    run::run_lanes(srv.addr, lanes, ctx.warmup, ctx.duration, ctx.rate).await
}

async fn lanes_of(name: &str, srv: &Server, ctx: &Ctx) -> Result<Vec<LaneStats>> {
    let n = ctx.connections;
    match name {
        "discovery" => timed(srv, ctx, vec![lane(name, (0..n).map(|_| Job::Get { path: DISCOVERY_PATH }))]).await,
        "jwks" => timed(srv, ctx, vec![lane(name, (0..n).map(|_| Job::Get { path: JWKS_PATH }))]).await,
        "cc-opaque" | "cc-jwt-rs256" | "cc-jwt-es256" => {
            let expect = expected_alg(name);
            let client = Arc::new(cc_client(srv, expect.is_some()).await?);
            check_cc(srv, &client, expect).await?;
            timed(srv, ctx, vec![lane(name, (0..n).map(|_| Job::ClientCredentials { client: client.clone() }))]).await
        }
        "code-redemption" => code_redemption(srv, ctx).await,
        "refresh" => refresh(srv, ctx, "openid").await,
        "refresh-no-id-token" => refresh(srv, ctx, "profile").await,
        "introspection" | "userinfo" => {
            let client = Arc::new(srv.add_client("bench rp", &["--skip-consent"]).await?);
            let user = srv.add_user("bench").await?;
            let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
            let code = flow::obtain_code(
                &mut conn,
                &mut Jar::default(),
                &srv.base,
                &client,
                &user,
                "openid profile email",
                &[],
            )
            .await?;
            let r = flow::redeem(&mut conn, &client, &code).await?;
            if r.status != 200 {
                return Err(r.unexpected("redeeming a code for an access token"));
            }
            let token = flow::member(&r.json()?, "access_token")?;
            let jobs: Vec<Job> = if name == "introspection" {
                let token: Arc<str> = token.into();
                (0..n).map(|_| Job::Introspect { client: client.clone(), token: token.clone() }).collect()
            } else {
                let bearer: Arc<str> = format!("Bearer {token}").into();
                (0..n).map(|_| Job::UserInfo { bearer: bearer.clone() }).collect()
            };
            timed(srv, ctx, vec![lane(name, jobs.into_iter())]).await
        }
        "login" => {
            let (client, user) = login_setup(srv).await?;
            let base: Arc<str> = srv.base.as_str().into();
            let jobs = (0..n).map(|_| Job::Login { client: client.clone(), user: user.clone(), base: base.clone() });
            timed(srv, ctx, vec![lane("login (full sign-ins)", jobs)]).await
        }
        "mixed" => {
            // 90 % of the connections send token requests while 10 % (at least one) sign in.
            let logins = (n / 10).max(1);
            let tokens = n.saturating_sub(logins).max(1);
            let expect = expected_alg(&ctx.mixed_token);
            let cc = Arc::new(cc_client(srv, expect.is_some()).await?);
            check_cc(srv, &cc, expect).await?;
            let (client, user) = login_setup(srv).await?;
            let base: Arc<str> = srv.base.as_str().into();
            let token_lane = lane(
                &format!("mixed: {}, {tokens} conns", ctx.mixed_token),
                (0..tokens).map(|_| Job::ClientCredentials { client: cc.clone() }),
            );
            let login_lane = lane(
                &format!("mixed: sign-ins, {logins} conns"),
                (0..logins).map(|_| Job::Login { client: client.clone(), user: user.clone(), base: base.clone() }),
            );
            timed(srv, ctx, vec![token_lane, login_lane]).await
        }
        other => bail!("unknown scenario {other}"),
    }
}

/// The JWT algorithm a client-credentials scenario expects; None for opaque tokens.
fn expected_alg(scenario: &str) -> Option<&'static str> {
    match scenario {
        "cc-jwt-rs256" => Some("RS256"),
        "cc-jwt-es256" => Some("ES256"),
        _ => None,
    }
}

pub(crate) async fn cc_client(srv: &Server, jwt: bool) -> Result<ClientCreds> {
    let format = if jwt { "jwt" } else { "opaque" };
    let options =
        ["--grant-type", "client_credentials", "--scope", "api.read api.write", "--access-token-format", format];
    srv.add_client("bench service", &options).await
}

/// One client-credentials request before the timed phase: the token has the expected form.
async fn check_cc(srv: &Server, client: &ClientCreds, alg: Option<&str>) -> Result<()> {
    let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
    let r = flow::token(&mut conn, client, &[("grant_type", "client_credentials")]).await?;
    if r.status != 200 {
        return Err(r.unexpected("client credentials"));
    }
    let token = flow::member(&r.json()?, "access_token")?;
    match alg {
        None if token.contains('.') => bail!("expected an opaque access token, got a JWT"),
        None => Ok(()),
        Some(want) => {
            let got = flow::jws_alg(&token)?;
            if got == want { Ok(()) } else { bail!("expected a {want} JWT access token, got {got}") }
        }
    }
}

/// A client that asks for consent, a user, and one sign-in that approves the consent page, so
/// the timed sign-ins find their consent remembered.
pub(crate) async fn login_setup(srv: &Server) -> Result<(Arc<ClientCreds>, Arc<UserCreds>)> {
    let client = srv.add_client("bench login rp", &[]).await?;
    let user = srv.add_user("bench").await?;
    let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
    let (_, first) =
        flow::obtain_code_visit(&mut conn, &mut Jar::default(), &srv.base, &client, &user, "openid", &[]).await?;
    if !first.login_page || !first.consent_page {
        bail!("the first sign-in should show the login form and the consent page: {first:?}");
    }
    let (_, second) =
        flow::obtain_code_visit(&mut conn, &mut Jar::default(), &srv.base, &client, &user, "openid", &[]).await?;
    if !second.login_page || second.consent_page {
        bail!("a sign-in in a new browser should show the login form and remember the consent: {second:?}");
    }
    Ok((Arc::new(client), Arc::new(user)))
}

/// A browser signed in to the server: its cookie jar holds the session (and the code it got).
pub(crate) async fn signed_in_browser(srv: &Server, client: &ClientCreds, user: &UserCreds) -> Result<(Jar, Code)> {
    let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
    let mut jar = Jar::default();
    let (code, visit) = flow::obtain_code_visit(&mut conn, &mut jar, &srv.base, client, user, "openid", &[]).await?;
    if !visit.login_page {
        bail!("the first authorization request did not show the login form");
    }
    Ok((jar, code))
}

/// `count` codes through the real flow: one browser signs in (login form, argon2), then
/// `connections` copies of its session ask /authorize for codes, which the session answers
/// with a redirect carrying a code.
async fn make_codes(
    srv: &Server,
    client: &Arc<ClientCreds>,
    user: &Arc<UserCreds>,
    count: usize,
    connections: usize,
) -> Result<Vec<Code>> {
    let (session, first) = signed_in_browser(srv, client, user).await?;
    let made = Arc::new(AtomicUsize::new(1));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(count).max(1) {
        let (client, user, made) = (client.clone(), user.clone(), made.clone());
        let base = srv.base.clone();
        let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
        let mut jar = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            while made.fetch_add(1, Ordering::Relaxed) < count {
                codes.push(flow::obtain_code(&mut conn, &mut jar, &base, &client, &user, "openid", &[]).await?);
            }
            Ok::<_, anyhow::Error>(codes)
        }));
    }
    let mut all = Vec::with_capacity(count);
    all.push(first);
    for t in tasks {
        all.extend(t.await.context("a code-making task failed")??);
    }
    Ok(all)
}

/// Codes made beforehand through /authorize (with login), then redeemed as fast as possible
/// (opaque access token + RS256 ID token each). A first small batch, redeemed during the
/// warm-up, measures the rate that sizes the main batch.
async fn code_redemption(srv: &Server, ctx: &Ctx) -> Result<Vec<LaneStats>> {
    let n = ctx.connections;
    let client = Arc::new(srv.add_client("bench rp", &["--skip-consent"]).await?);
    let user = Arc::new(srv.add_user("bench").await?);
    let calibration = (n * 25).max(200);
    progress(&format!("code-redemption: making {calibration} codes through /authorize for the warm-up"));
    let pool = Arc::new(CodePool::new(make_codes(srv, &client, &user, calibration, n).await?));
    let jobs = (0..n).map(|_| Job::Redeem { client: client.clone(), pool: pool.clone() });
    let warm = run::run_lanes(srv.addr, vec![lane("warm-up", jobs)], Duration::ZERO, ctx.warmup, None).await?;
    let warm = warm.into_iter().next().context("no warm-up result")?;
    if warm.errors > 0 {
        bail!("{} errors while redeeming warm-up codes: {}", warm.errors, warm.first_error.unwrap_or_default());
    }
    let rate = ctx.rate.unwrap_or(warm.rate()).max(100.0);
    let wanted = rate * ctx.duration.as_secs_f64() * 1.3;
    // f64 → usize: a positive count far below usize::MAX.
    let count = (wanted as usize).clamp(n * 4, MAX_CODES);
    progress(&format!("code-redemption: about {rate:.0} redemptions/s in the warm-up; making {count} codes"));
    let pool = Arc::new(CodePool::new(make_codes(srv, &client, &user, count, n).await?));
    let jobs = (0..n).map(|_| Job::Redeem { client: client.clone(), pool: pool.clone() });
    srv.reset_peak_rss();
    let stats =
        run::run_lanes(srv.addr, vec![lane("code-redemption", jobs)], Duration::ZERO, ctx.duration, ctx.rate).await?;
    if let Some(s) = stats.first()
        && s.requests() as usize >= pool.len()
    {
        progress(&format!("code-redemption: all {} codes were redeemed after {:.1} s", pool.len(), s.elapsed));
    }
    Ok(stats)
}

/// Every connection follows its own refresh token chain, started from its own code (one
/// sign-in, whose session then answers every connection's authorization request): each call
/// rotates the token and returns the next one: with an RS256 ID token when `scope` is
/// `openid`, with an access and a refresh token only otherwise.
async fn refresh(srv: &Server, ctx: &Ctx, scope: &'static str) -> Result<Vec<LaneStats>> {
    let client = Arc::new(
        srv.add_client("bench first-party rp", &["--skip-consent", "--refresh-without-offline-access"]).await?,
    );
    let user = Arc::new(srv.add_user("bench").await?);
    let base: Arc<str> = srv.base.as_str().into();
    let (session, _) = signed_in_browser(srv, &client, &user).await?;
    let mut tasks = Vec::new();
    for _ in 0..ctx.connections {
        let (client, user, base) = (client.clone(), user.clone(), base.clone());
        let mut conn = Conn::new(srv.addr, REQUEST_TIMEOUT)?;
        let mut jar = session.clone();
        tasks.push(tokio::spawn(async move {
            let first = run::start_chain(&mut conn, &client, &user, &base, &mut jar, scope).await?;
            Ok::<_, anyhow::Error>(Job::Refresh { client, user, base, jar, chain: Some(first), scope })
        }));
    }
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.push(t.await.context("a refresh set-up task failed")??);
    }
    let name = if scope == "openid" { "refresh" } else { "refresh-no-id-token" };
    timed(srv, ctx, vec![Lane { name: name.into(), jobs }]).await
}
