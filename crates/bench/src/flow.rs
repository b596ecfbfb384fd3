//! The OAuth flows as a client and a browser drive them: authorization requests with PKCE, the
//! sign-in pages (login form with its hidden `interaction` and `csrf` fields, consent), code
//! redemption, refresh, client credentials.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use rand::RngCore;
use sha2::Digest;

use crate::client::{Conn, Jar, Resp, basic_auth, browser_get, browser_post};

/// A registered client, as `latchkey client add --json` reported it.
#[derive(Clone, Debug)]
pub struct ClientCreds {
    pub id: String,
    pub redirect_uri: String,
    /// The precomputed `Authorization: Basic` value.
    pub basic: String,
}

impl ClientCreds {
    pub fn new(id: String, secret: String, redirect_uri: String) -> Self {
        let basic = basic_auth(&id, &secret);
        Self { id, redirect_uri, basic }
    }
}

/// A user's credentials.
#[derive(Clone, Debug)]
pub struct UserCreds {
    pub username: String,
    pub password: String,
}

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A code and the PKCE verifier it was requested with.
#[derive(Clone, Debug)]
pub struct Code {
    pub code: String,
    pub verifier: String,
}

/// `/authorize?…` for a code flow with PKCE S256; returns the path and the verifier.
pub fn authorize_path(c: &ClientCreds, scope: &str, extra: &[(&str, &str)]) -> (String, String) {
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = random_token();
    let nonce = random_token();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &c.id)
        .append_pair("redirect_uri", &c.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    (format!("/authorize?{}", q.finish()), verifier)
}

/// The value of `<input … name="NAME" value="…">` in a page (askama escapes values).
pub fn hidden(body: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = body.find(&needle)? + needle.len();
    let rest = body.get(start..)?;
    let end = rest.find('"')?;
    let raw = rest.get(..end)?;
    Some(
        raw.replace("&#x2d;", "-")
            .replace("&#45;", "-")
            .replace("&#x2b;", "+")
            .replace("&#x2f;", "/")
            .replace("&#x3d;", "=")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// How a sign-in went.
#[derive(Default, Debug)]
pub struct Visit {
    pub code: String,
    /// The login form was shown (and filled in).
    pub login_page: bool,
    /// The consent page was shown (and approved).
    pub consent_page: bool,
}

/// Where a redirect leads: a path on the server, or the client's redirect URI.
enum Next {
    Server(String),
    Client(String),
}

fn next_hop(base: &str, location: &str) -> Next {
    if let Some(path) = location.strip_prefix(base) {
        Next::Server(if path.is_empty() { "/".into() } else { path.to_owned() })
    } else if location.starts_with('/') {
        Next::Server(location.to_owned())
    } else {
        Next::Client(location.to_owned())
    }
}

/// The browser part of a sign-in: GET `authorize`, then follow the server's redirects, filling in
/// the login form and approving the consent page when they come, until the redirect to the
/// client. Returns the code from that redirect and which pages were shown.
pub async fn browse_to_code(
    conn: &mut Conn,
    jar: &mut Jar,
    base: &str,
    authorize: &str,
    user: &UserCreds,
) -> Result<Visit> {
    let mut visit = Visit::default();
    let mut r = browser_get(conn, jar, authorize).await?;
    let mut path = authorize.to_owned();
    for _ in 0..12 {
        match r.status {
            301..=303 | 307 | 308 => {
                let loc = r.location().ok_or_else(|| anyhow!("redirect without Location from {path}"))?.to_owned();
                match next_hop(base, &loc) {
                    Next::Client(to) => {
                        visit.code = code_from(&to)?;
                        return Ok(visit);
                    }
                    Next::Server(p) => {
                        r = browser_get(conn, jar, &p).await?;
                        path = p;
                    }
                }
            }
            200 if path.starts_with("/login") => {
                visit.login_page = true;
                let (interaction, csrf) = form_fields(&r, "login")?;
                let form = [
                    ("interaction", interaction.as_str()),
                    ("csrf", csrf.as_str()),
                    ("username", user.username.as_str()),
                    ("password", user.password.as_str()),
                ];
                r = browser_post(conn, jar, "/login", &form).await?;
                if r.status == 200 {
                    bail!("login refused for {}", user.username);
                }
                path = "/login (POST)".into();
            }
            200 if path.starts_with("/consent") => {
                visit.consent_page = true;
                let (interaction, csrf) = form_fields(&r, "consent")?;
                let form = [("interaction", interaction.as_str()), ("csrf", csrf.as_str()), ("decision", "approve")];
                r = browser_post(conn, jar, "/consent", &form).await?;
                path = "/consent (POST)".into();
            }
            _ => return Err(r.unexpected(&format!("sign-in at {}", path.split('?').next().unwrap_or("")))),
        }
    }
    bail!("sign-in did not reach the client after 12 steps (last: {path})")
}

fn form_fields(r: &Resp, page: &str) -> Result<(String, String)> {
    let body = r.text();
    let interaction =
        hidden(body, "interaction").with_context(|| format!("no interaction field on the {page} page"))?;
    let csrf = hidden(body, "csrf").with_context(|| format!("no csrf field on the {page} page"))?;
    Ok((interaction, csrf))
}

fn code_from(redirect: &str) -> Result<String> {
    let u =
        url::Url::parse(redirect).with_context(|| format!("redirect to the client is not a URL: {redirect:.200}"))?;
    let param = |name: &str| u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if let Some(code) = param("code") {
        return Ok(code);
    }
    bail!(
        "the client got no code: error={} {}",
        param("error").unwrap_or_default(),
        param("error_description").unwrap_or_default()
    )
}

/// A whole code flow: browse to a code (signing in when needed) for `scope`.
pub async fn obtain_code(
    conn: &mut Conn,
    jar: &mut Jar,
    base: &str,
    client: &ClientCreds,
    user: &UserCreds,
    scope: &str,
    extra: &[(&str, &str)],
) -> Result<Code> {
    obtain_code_visit(conn, jar, base, client, user, scope, extra).await.map(|(code, _)| code)
}

/// [`obtain_code`], also telling which pages were shown.
pub async fn obtain_code_visit(
    conn: &mut Conn,
    jar: &mut Jar,
    base: &str,
    client: &ClientCreds,
    user: &UserCreds,
    scope: &str,
    extra: &[(&str, &str)],
) -> Result<(Code, Visit)> {
    let (path, verifier) = authorize_path(client, scope, extra);
    let mut visit = browse_to_code(conn, jar, base, &path, user).await?;
    let code = std::mem::take(&mut visit.code);
    Ok((Code { code, verifier }, visit))
}

/// POST /token with client_secret_basic.
pub async fn token(conn: &mut Conn, client: &ClientCreds, form: &[(&str, &str)]) -> Result<Resp> {
    conn.post_form("/token", form, &[(AUTHORIZATION, client.basic.as_str())]).await
}

/// Redeem a code; the token response as JSON (an error unless 200).
pub async fn redeem(conn: &mut Conn, client: &ClientCreds, code: &Code) -> Result<Resp> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.code.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", code.verifier.as_str()),
    ];
    token(conn, client, &form).await
}

/// A string member of a token response.
pub fn member(v: &serde_json::Value, name: &str) -> Result<String> {
    v.get(name).and_then(|x| x.as_str()).map(str::to_owned).ok_or_else(|| anyhow!("no {name} in the token response"))
}

/// The `alg` in a compact JWS's header.
pub fn jws_alg(jwt: &str) -> Result<String> {
    let header = jwt.split('.').next().ok_or_else(|| anyhow!("not a JWS"))?;
    let bytes = URL_SAFE_NO_PAD.decode(header).context("JWS header is not base64url")?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).context("JWS header is not JSON")?;
    v.get("alg").and_then(|a| a.as_str()).map(str::to_owned).ok_or_else(|| anyhow!("JWS header has no alg"))
}
