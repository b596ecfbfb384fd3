//! The timed loop: one task per connection, each repeating its job as fast as the server
//! answers (a closed loop), a warm-up that is not recorded, then `duration` of recorded
//! requests. Latencies go into an HDR histogram per task, merged per lane.

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use http::header::AUTHORIZATION;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Conn, Jar};
use crate::flow::{self, ClientCreds, Code, UserCreds};

/// Time allowed for one request (or one whole sign-in).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Codes made before the timed phase, taken by whichever connection is free.
pub struct CodePool {
    codes: Vec<Code>,
    next: AtomicUsize,
}

impl CodePool {
    pub fn new(codes: Vec<Code>) -> Self {
        Self { codes, next: AtomicUsize::new(0) }
    }

    fn take(&self) -> Option<&Code> {
        self.codes.get(self.next.fetch_add(1, Ordering::Relaxed))
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }
}

/// What one connection does, over and over.
pub enum Job {
    /// GET a public document.
    Get { path: &'static str },
    /// `grant_type=client_credentials`.
    ClientCredentials { client: Arc<ClientCreds> },
    /// Redeem the next pre-made code (the job ends when the pool is empty).
    Redeem { client: Arc<ClientCreds>, pool: Arc<CodePool> },
    /// Rotate this connection's own refresh token chain.
    Refresh {
        client: Arc<ClientCreds>,
        user: Arc<UserCreds>,
        base: Arc<str>,
        jar: Jar,
        chain: Option<String>,
        /// `openid` (each rotation signs an RS256 ID token) or a scope without it.
        scope: &'static str,
    },
    /// Introspect an opaque access token.
    Introspect { client: Arc<ClientCreds>, token: Arc<str> },
    /// UserInfo with an access token (`bearer` is the whole header value).
    UserInfo { bearer: Arc<str> },
    /// A whole sign-in in a new browser: authorize, login form, (remembered consent), code,
    /// token.
    Login { client: Arc<ClientCreds>, user: Arc<UserCreds>, base: Arc<str> },
}

pub(crate) enum Outcome {
    Done,
    Failed(anyhow::Error),
    /// Nothing left to do (the code pool is empty).
    Exhausted,
}

fn expect(r: &crate::client::Resp, what: &str, needle: &str) -> Result<()> {
    if r.status == 200 && r.text().contains(needle) { Ok(()) } else { Err(r.unexpected(what)) }
}

impl Job {
    pub(crate) async fn step(&mut self, conn: &mut Conn) -> Outcome {
        let result = match self {
            Job::Get { path } => conn.get(path, &[]).await.and_then(|r| expect(&r, path, "")),
            Job::ClientCredentials { client } => flow::token(conn, client, &[("grant_type", "client_credentials")])
                .await
                .and_then(|r| expect(&r, "client credentials", "access_token")),
            Job::Redeem { client, pool } => match pool.take() {
                None => return Outcome::Exhausted,
                Some(code) => {
                    flow::redeem(conn, client, code).await.and_then(|r| expect(&r, "code redemption", "id_token"))
                }
            },
            Job::Refresh { client, user, base, jar, chain, scope } => {
                refresh(conn, client, user, base, jar, chain, scope).await
            }
            Job::Introspect { client, token } => conn
                .post_form("/introspect", &[("token", token)], &[(AUTHORIZATION, client.basic.as_str())])
                .await
                .and_then(|r| expect(&r, "introspection", "\"active\":true")),
            Job::UserInfo { bearer } => {
                conn.get("/userinfo", &[(AUTHORIZATION, bearer)]).await.and_then(|r| expect(&r, "userinfo", "\"sub\""))
            }
            Job::Login { client, user, base } => sign_in(conn, client, user, base).await,
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// One rotation; a broken chain (an error answer) is replaced by a new one from a new code.
async fn refresh(
    conn: &mut Conn,
    client: &ClientCreds,
    user: &UserCreds,
    base: &str,
    jar: &mut Jar,
    chain: &mut Option<String>,
    scope: &str,
) -> Result<()> {
    let current = match chain.take() {
        Some(t) => t,
        None => start_chain(conn, client, user, base, jar, scope).await?,
    };
    let r = flow::token(conn, client, &[("grant_type", "refresh_token"), ("refresh_token", &current)]).await?;
    if r.status != 200 {
        return Err(r.unexpected("refresh"));
    }
    *chain = Some(flow::member(&r.json()?, "refresh_token")?);
    Ok(())
}

/// A refresh token from a new code (the browser keeps its session, so no login is needed).
pub async fn start_chain(
    conn: &mut Conn,
    client: &ClientCreds,
    user: &UserCreds,
    base: &str,
    jar: &mut Jar,
    scope: &str,
) -> Result<String> {
    let code = flow::obtain_code(conn, jar, base, client, user, scope, &[]).await?;
    let r = flow::redeem(conn, client, &code).await?;
    if r.status != 200 {
        return Err(r.unexpected("redeeming a code for a refresh token"));
    }
    flow::member(&r.json()?, "refresh_token")
}

async fn sign_in(conn: &mut Conn, client: &ClientCreds, user: &UserCreds, base: &str) -> Result<()> {
    let mut jar = Jar::default();
    let code = flow::obtain_code(conn, &mut jar, base, client, user, "openid", &[]).await?;
    let r = flow::redeem(conn, client, &code).await?;
    expect(&r, "code redemption after sign-in", "id_token")
}

/// Connections running the same job: one row of the table.
pub struct Lane {
    pub name: String,
    pub jobs: Vec<Job>,
}

/// A lane's measurements.
pub struct LaneStats {
    pub name: String,
    pub hist: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Seconds from the end of the warm-up to the last recorded answer.
    pub elapsed: f64,
}

impl LaneStats {
    pub fn requests(&self) -> u64 {
        self.hist.len()
    }

    pub fn rate(&self) -> f64 {
        if self.elapsed > 0.0 {
            // u64 → f64: counts far below 2^52.
            self.hist.len() as f64 / self.elapsed
        } else {
            0.0
        }
    }

    /// A quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

struct TaskStats {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

pub(crate) fn histogram() -> Result<Histogram<u64>> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

/// Open loop: when this connection's next request is due.
struct Pace {
    next: Instant,
    every: Duration,
}

async fn drive(
    mut job: Job,
    mut conn: Conn,
    measure_from: Instant,
    until: Instant,
    mut pace: Option<Pace>,
) -> Result<TaskStats> {
    let mut s = TaskStats { hist: histogram()?, errors: 0, first_error: None, last_done: None };
    loop {
        let mut started = Instant::now();
        if let Some(p) = &mut pace {
            let due = p.next;
            p.next += p.every;
            if due > started {
                tokio::time::sleep_until(due.into()).await;
                started = Instant::now();
            } else {
                // Behind schedule: the wait since the request was due counts (no coordinated
                // omission: a slow answer delays the requests behind it, and they show it).
                started = due;
            }
        }
        if started >= until {
            break;
        }
        let outcome = job.step(&mut conn).await;
        let done = Instant::now();
        let measured = started >= measure_from;
        match outcome {
            Outcome::Done => {
                if measured {
                    let us = u64::try_from(done.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    s.hist.saturating_record(us.max(1));
                    s.last_done = Some(done);
                }
            }
            Outcome::Failed(e) => {
                // Errors in the warm-up count too: the smoke pass must see none at all.
                s.errors += 1;
                s.first_error.get_or_insert_with(|| format!("{e:#}"));
                if measured {
                    s.last_done = Some(done);
                }
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Outcome::Exhausted => break,
        }
    }
    Ok(s)
}

/// Run every lane's jobs at once: `warmup` unrecorded, then `duration` recorded. `rate`:
/// requests per second for each lane, spread evenly over its connections (open loop); None:
/// each connection sends its next request as soon as the last is answered (closed loop).
pub async fn run_lanes(
    addr: SocketAddr,
    lanes: Vec<Lane>,
    warmup: Duration,
    duration: Duration,
    rate: Option<f64>,
) -> Result<Vec<LaneStats>> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut running = Vec::new();
    for lane in lanes {
        let mut tasks = Vec::new();
        let n = lane.jobs.len().max(1);
        // usize → f64: a handful of connections.
        let every = rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(n as f64 / r));
        for (i, job) in lane.jobs.into_iter().enumerate() {
            let conn = Conn::new(addr, REQUEST_TIMEOUT)?;
            // Connections start staggered, so requests arrive evenly rather than in bursts.
            let pace = every.map(|e| Pace { next: start + e.mul_f64(i as f64 / n as f64), every: e });
            tasks.push(tokio::spawn(drive(job, conn, measure_from, until, pace)));
        }
        running.push((lane.name, tasks));
    }
    let mut out = Vec::new();
    for (name, tasks) in running {
        let mut hist = histogram()?;
        let (mut errors, mut first_error, mut last) = (0, None, None::<Instant>);
        for t in tasks {
            let s = t.await.map_err(|e| anyhow!("a load task failed: {e}"))??;
            hist.add(&s.hist).map_err(|e| anyhow!("histogram: {e}"))?;
            errors += s.errors;
            first_error = first_error.or(s.first_error);
            last = match (last, s.last_done) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let elapsed = last.map(|l| l.saturating_duration_since(measure_from).as_secs_f64()).unwrap_or(0.0);
        out.push(LaneStats { name, hist, errors, first_error, elapsed });
    }
    Ok(out)
}
