//! A minimal HTTP/1.1 client: one keep-alive connection per worker (hyper's connection-level
//! API, so the load generator opens exactly `--connections` sockets), a cookie jar for the
//! browser flows, and form encoding.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// What the server answered.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("HTTP {}: not JSON: {:.200}", self.status, self.text()))
    }

    /// The response as an error: status and the start of the body.
    pub fn unexpected(&self, what: &str) -> anyhow::Error {
        anyhow!("{what}: HTTP {} {:.300}", self.status, self.text())
    }
}

/// One keep-alive connection to the server; reconnects after an error or a timeout.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Conn {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let host = HeaderValue::from_str(&addr.to_string())?;
        Ok(Self { addr, host, sender: None, timeout })
    }

    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the server closes; errors surface on send.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))?;
        sender.ready().await?;
        Ok(sender)
    }

    /// Send one request and read the whole response, within the connection's timeout.
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Resp> {
        req.headers_mut().insert(HOST, self.host.clone());
        let limit = self.timeout;
        let exchange = async {
            let sender = self.ready_sender().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Resp { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        let outcome = tokio::time::timeout(limit, exchange).await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                // The connection's state is unknown after a timeout: start a new one.
                self.sender = None;
                bail!("no answer within {} s", limit.as_secs())
            }
        }
    }

    pub async fn get(&mut self, path: &str, headers: &[(http::HeaderName, &str)]) -> Result<Resp> {
        let mut b = Request::builder().method(Method::GET).uri(path);
        for (k, v) in headers {
            b = b.header(k, *v);
        }
        self.send(b.body(Full::new(Bytes::new()))?).await
    }

    pub async fn post_form(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(http::HeaderName, &str)],
    ) -> Result<Resp> {
        let mut b =
            Request::builder().method(Method::POST).uri(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(k, *v);
        }
        self.send(b.body(Full::new(Bytes::from(encode_form(form))))?).await
    }
}

pub fn encode_form(form: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `Authorization: Basic` for a client (RFC 6749 §2.3.1: id and secret form-encoded first).
pub fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// The cookies of one simulated browser.
#[derive(Default, Clone)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// Take the `Set-Cookie` headers of a response (name and value only; the server sets
    /// host-only cookies on one origin, so attributes do not matter here).
    pub fn store(&mut self, r: &Resp) {
        for v in r.headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else { continue };
            let (name, value) = (name.trim(), value.trim());
            let expired = v.to_ascii_lowercase().contains("max-age=0");
            self.cookies.retain(|(n, _)| n != name);
            if !expired && !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header value, if any cookie is held.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; "))
    }
}

/// GET with the jar's cookies, storing what the server sets.
pub async fn browser_get(conn: &mut Conn, jar: &mut Jar, path: &str) -> Result<Resp> {
    let cookie = jar.header();
    let headers: Vec<(http::HeaderName, &str)> = cookie.as_deref().map(|c| (COOKIE, c)).into_iter().collect();
    let r = conn.get(path, &headers).await?;
    jar.store(&r);
    Ok(r)
}

/// POST a form with the jar's cookies, storing what the server sets.
pub async fn browser_post(conn: &mut Conn, jar: &mut Jar, path: &str, form: &[(&str, &str)]) -> Result<Resp> {
    let cookie = jar.header();
    let headers: Vec<(http::HeaderName, &str)> = cookie.as_deref().map(|c| (COOKIE, c)).into_iter().collect();
    let r = conn.post_form(path, form, &headers).await?;
    jar.store(&r);
    Ok(r)
}
