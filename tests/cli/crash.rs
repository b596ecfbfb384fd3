//! Crash safety (issue "Hardening"): `latchkey serve` is killed with SIGKILL at random moments
//! while it issues codes, client-credentials tokens, refresh rotations and registrations.
//! Everything it acknowledged must survive, exactly once, and nothing half-written may remain.
use crate::support::{
    Browser, Landing, RegisteredClient, TestDb, authorize_url, cli, free_port, latchkey_bin, query_i64, query_param,
    stderr,
};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 4;
const CHAINS: usize = 4;

/// What the server acknowledged (answered), and what broke an invariant.
#[derive(Default)]
struct Ledger {
    access_tokens: Vec<String>,
    /// Each refresh chain's latest acknowledged token; `None` once a request's outcome is unknown
    /// (sent, but the server died before answering: it may or may not have rotated).
    chains: Vec<Option<String>>,
    /// (code, verifier)
    codes: Vec<(String, String)>,
    /// (client_id, registration_access_token)
    registrations: Vec<(String, String)>,
    rotations: usize,
    violations: Vec<String>,
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(db: &TestDb, port: u16) -> Serve {
    spawn_as(db, port, port)
}

/// A server on `port` whose issuer is `issuer_port`'s URL (instances behind one load balancer).
fn spawn_as(db: &TestDb, port: u16, issuer_port: u16) -> Serve {
    let mut cmd = Command::new(latchkey_bin());
    cmd.arg("serve").env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in db.env() {
        cmd.env(k, v);
    }
    cmd.env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_ISSUER", format!("http://127.0.0.1:{issuer_port}"))
        .env("LATCHKEY_REGISTRATION__POLICY", "open")
        .env("LATCHKEY_LIMITS__REGISTRATIONS_PER_IP", "1000000")
        .env("LATCHKEY_LIFETIMES__AUTHORIZATION_CODE", "600")
        .env("LATCHKEY_LOG_FILTER", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Serve(cmd.spawn().unwrap())
}

async fn wait_up(base: &str) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not come up");
}

fn add_client(db: &TestDb, args: &[&str]) -> RegisteredClient {
    let mut all = vec!["client", "add", "--name", "crash", "--json"];
    all.extend_from_slice(args);
    let o = cli(db, &[], &all, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    RegisteredClient {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().map(str::to_owned),
        redirect_uri: "https://rp.example/cb".into(),
    }
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    c: &RegisteredClient,
    form: &[(&str, &str)],
) -> reqwest::Result<(u16, Value)> {
    let r = http.post(format!("{base}/token")).basic_auth(&c.id, c.secret.as_ref()).form(form).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// A code through the browser's existing session (prompt=none), or None if the server is gone.
async fn code(b: &Browser, base: &str, c: &RegisteredClient) -> Option<(String, String)> {
    let (url, _, _, verifier) = authorize_url(base, c, "openid", &[("prompt", "none")]);
    let r = b.http.get(&url).send().await.ok()?;
    let loc = r.headers().get("location")?.to_str().ok()?.to_owned();
    Some((query_param(&loc, "code")?, verifier))
}

async fn redeem(http: &reqwest::Client, base: &str, c: &RegisteredClient, code: &str, verifier: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &c.redirect_uri),
        ("code_verifier", verifier),
    ];
    token(http, base, c, &form).await.unwrap()
}

/// Run every kind of write until `stop`, recording what was acknowledged.
fn workers(
    base: &str,
    b: &Browser,
    cc: &RegisteredClient,
    rp: &RegisteredClient,
    ledger: &Arc<Mutex<Ledger>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (http, base, cc, ledger, stop) = (http.clone(), base.to_owned(), cc.clone(), ledger.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match token(&http, &base, &cc, &[("grant_type", "client_credentials")]).await {
                    Ok((200, v)) => {
                        ledger.lock().unwrap().access_tokens.push(v["access_token"].as_str().unwrap().into())
                    }
                    Ok((s, v)) => ledger.lock().unwrap().violations.push(format!("client credentials: {s} {v}")),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    let chains = ledger.lock().unwrap().chains.len();
    for i in 0..chains {
        let (http, base, rp, ledger, stop) = (http.clone(), base.to_owned(), rp.clone(), ledger.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Some(rt) = ledger.lock().unwrap().chains[i].clone() else { return };
                let r = token(&http, &base, &rp, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
                {
                    let mut l = ledger.lock().unwrap();
                    match r {
                        Ok((200, v)) => {
                            l.chains[i] = Some(v["refresh_token"].as_str().unwrap().into());
                            l.rotations += 1;
                        }
                        Ok((s, v)) => {
                            l.violations.push(format!("acknowledged refresh token refused: {s} {v}"));
                            l.chains[i] = None;
                        }
                        Err(_) => l.chains[i] = None,
                    }
                }
                // A pause between rotations, so a kill finds some chains between requests.
                tokio::time::sleep(jitter(2, 20)).await;
            }
        }));
    }
    {
        let (http, base, ledger, stop) = (http.clone(), base.to_owned(), ledger.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"redirect_uris": ["https://reg.example/cb"], "client_name": "crash"});
                match http.post(format!("{base}/register")).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(v) = r.json::<Value>().await {
                            let id = v["client_id"].as_str().unwrap().to_owned();
                            let rat = v["registration_access_token"].as_str().unwrap().to_owned();
                            ledger.lock().unwrap().registrations.push((id, rat));
                        }
                    }
                    Ok(r) => ledger.lock().unwrap().violations.push(format!("registration: {}", r.status())),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    {
        let (b, base, rp, ledger, stop) = (b.clone(), base.to_owned(), rp.clone(), ledger.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match code(&b, &base, &rp).await {
                    Some(c) => ledger.lock().unwrap().codes.push(c),
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    tasks
}

/// A pseudo-random duration in [lo, hi) ms, different every call.
fn jitter(lo: u64, hi: u64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    Duration::from_millis(lo + r % (hi - lo))
}

#[tokio::test]
async fn sigkill_under_load_loses_nothing_acknowledged_and_leaves_nothing_half_written() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["migrate"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let cc = add_client(&db, &["--grant-type", "client_credentials"]);
    let rp = add_client(
        &db,
        &["--redirect-uri", "https://rp.example/cb", "--skip-consent", "--refresh-without-offline-access"],
    );
    let rs = add_client(&db, &["--grant-type", "client_credentials", "--introspection"]);
    let o = cli(&db, &[], &["user", "add", "--username", "alice", "--password-stdin"], Some("pw-alice\n"));
    assert!(o.status.success(), "{}", stderr(&o));

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let b = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: base.clone(),
    };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut server = spawn(&db, port);
    wait_up(&base).await;
    // One sign-in; its session (in the database) outlives every crash.
    let (url, ..) = authorize_url(&base, &rp, "openid", &[]);
    let l = b.navigate(&url).await;
    let Landing::Client(_) = b.login(l, "alice", "pw-alice").await else { panic!("sign-in failed") };
    for round in 0..ROUNDS {
        if round > 0 {
            server = spawn(&db, port);
            wait_up(&base).await;
        }
        // New refresh chains every round, beside those that survived the last crash.
        for _ in 0..CHAINS {
            let (code, verifier) = code(&b, &base, &rp).await.unwrap();
            let (s, v) = redeem(&http, &base, &rp, &code, &verifier).await;
            assert_eq!(s, 200, "{v}");
            ledger.lock().unwrap().chains.push(Some(v["refresh_token"].as_str().unwrap().into()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = workers(&base, &b, &cc, &rp, &ledger, &stop);
        tokio::time::sleep(jitter(300, 900)).await;
        server.0.kill().unwrap(); // SIGKILL
        server.0.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }

    let _server = spawn(&db, port);
    wait_up(&base).await;
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(l.violations.is_empty(), "{} violations, first: {:?}", l.violations.len(), l.violations.first());
    assert!(l.access_tokens.len() > 20 && !l.codes.is_empty() && !l.registrations.is_empty(), "too little load");
    assert!(l.rotations > 20, "too few rotations: {}", l.rotations);
    assert!(l.chains.iter().any(Option::is_some), "every refresh chain was cut by a crash");

    // Every acknowledged access token is active.
    for t in &l.access_tokens {
        let r = http.post(format!("{base}/introspect")).basic_auth(&rs.id, rs.secret.as_ref()).form(&[("token", t)]);
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert_eq!(v["active"], true, "an acknowledged access token was lost");
    }
    // Every acknowledged refresh token redeems exactly once.
    for rt in l.chains.iter().flatten() {
        let (s, v) = token(&http, &base, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.unwrap();
        assert_eq!(s, 200, "an acknowledged refresh token was lost: {v}");
        let (s, _) = token(&http, &base, &rp, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.unwrap();
        assert_eq!(s, 400, "a refresh token redeemed twice");
    }
    // Every acknowledged code redeems exactly once.
    for (code, verifier) in &l.codes {
        let (s, v) = redeem(&http, &base, &rp, code, verifier).await;
        assert_eq!(s, 200, "an acknowledged code was lost: {v}");
        assert_eq!(redeem(&http, &base, &rp, code, verifier).await.0, 400, "a code redeemed twice");
    }
    // Every acknowledged registration exists and is manageable.
    for (id, rat) in &l.registrations {
        let r = http.get(format!("{base}/register/{id}")).bearer_auth(rat).send().await.unwrap();
        assert_eq!(r.status(), 200, "an acknowledged registration was lost");
    }
    // No orphans: every token and code belongs to a grant, every grant to a client.
    for sql in [
        "SELECT COUNT(*) FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = t.grant_id)",
        "SELECT COUNT(*) FROM authorization_codes t WHERE NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = t.grant_id)",
        "SELECT COUNT(*) FROM access_tokens t WHERE t.grant_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = t.grant_id)",
        "SELECT COUNT(*) FROM grants g WHERE NOT EXISTS (SELECT 1 FROM clients c WHERE c.client_id = g.client_id)",
    ] {
        assert_eq!(query_i64(&db, sql).await, 0, "{sql}");
    }
    if !db.is_postgres() {
        assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM pragma_foreign_key_check").await, 0);
        assert_eq!(
            query_i64(&db, "SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check <> 'ok'").await,
            0
        );
    }
}

#[tokio::test]
async fn two_instances_on_one_database_one_killed_mid_load_the_other_keeps_answering() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["migrate"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let cc = add_client(&db, &["--grant-type", "client_credentials"]);
    let rp = add_client(&db, &["--redirect-uri", "https://rp.example/cb", "--skip-consent"]);
    let o = cli(&db, &[], &["user", "add", "--username", "alice", "--password-stdin"], Some("pw-alice\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let (pa, pb) = (free_port(), free_port());
    let (a_base, b_base) = (format!("http://127.0.0.1:{pa}"), format!("http://127.0.0.1:{pb}"));
    let mut a = spawn_as(&db, pa, pa);
    let _b = spawn_as(&db, pb, pa);
    wait_up(&a_base).await;
    wait_up(&b_base).await;

    // A sign-in and a code on A, for B to redeem after A is gone.
    let browser = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: a_base.clone(),
    };
    let (url, ..) = authorize_url(&a_base, &rp, "openid", &[]);
    let l = browser.navigate(&url).await;
    let Landing::Client(_) = browser.login(l, "alice", "pw-alice").await else { panic!("sign-in failed") };
    let (a_code, verifier) = code(&browser, &a_base, &rp).await.unwrap();

    // Load on both; A is killed in the middle.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let b_answers = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
    let mut tasks = Vec::new();
    for base in [a_base.clone(), b_base.clone(), b_base.clone()] {
        let (http, cc, stop, b_answers, on_b) =
            (http.clone(), cc.clone(), stop.clone(), b_answers.clone(), base == b_base);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = token(&http, &base, &cc, &[("grant_type", "client_credentials")]).await;
                if on_b {
                    let mut b = b_answers.lock().unwrap();
                    match r {
                        Ok((200, _)) => b.0 += 1,
                        Ok((s, v)) => b.1.push(format!("{s} {v}")),
                        Err(e) => b.1.push(e.to_string()),
                    }
                } else if r.is_err() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.0.kill().unwrap(); // SIGKILL
    a.0.wait().unwrap();
    let served_before = b_answers.lock().unwrap().0;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (served, failures) = std::mem::take(&mut *b_answers.lock().unwrap());
    assert!(failures.is_empty(), "B failed while A died: {failures:?}");
    assert!(served > served_before + 10, "B stopped answering after A died ({served_before} → {served})");
    // A's code redeems on B, once; the session made on A still signs in on B.
    let (s, v) = redeem(&http, &b_base, &rp, &a_code, &verifier).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(redeem(&http, &b_base, &rp, &a_code, &verifier).await.0, 400);
    assert!(code(&browser, &b_base, &rp).await.is_some(), "the session made on A is not a session on B");
}
