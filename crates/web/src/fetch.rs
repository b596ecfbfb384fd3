//! Fetching client-supplied URLs (`jwks_uri`, later `request_uri`, `sector_identifier_uri`)
//! and posting to them (`backchannel_logout_uri`) without becoming an SSRF tool: https only
//! (plain http to loopback in development mode), every resolved address checked and pinned (no
//! DNS rebinding), redirects followed only to addresses that pass the same check (never, for a
//! POST), a timeout and a size cap.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::Url;

pub const MAX_BYTES: usize = 64 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("not an absolute URL")]
    BadUrl,
    #[error("only https URLs are fetched")]
    NotHttps,
    #[error("the host resolves to a private, loopback or reserved address")]
    PrivateAddress,
    #[error("the host could not be resolved")]
    Resolve,
    #[error("the request failed: {0}")]
    Request(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the document is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("too many redirects")]
    TooManyRedirects,
}

/// Addresses a client-supplied URL may never reach (RFC 6890 special-purpose ranges).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6.to_ipv4_mapped().is_some_and(|v4| is_forbidden(IpAddr::V4(v4)))
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
        }
    }
}

/// May this URL be fetched at all (before resolving)?
fn check_url(u: &Url, dev_loopback: bool) -> Result<(), FetchError> {
    match u.scheme() {
        "https" => Ok(()),
        "http" if dev_loopback && is_loopback_host(u) => Ok(()),
        _ => Err(FetchError::NotHttps),
    }
}

fn is_loopback_host(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

async fn resolve(u: &Url, dev_loopback: bool) -> Result<SocketAddr, FetchError> {
    let host = u.host_str().ok_or(FetchError::BadUrl)?;
    let port = u.port_or_known_default().ok_or(FetchError::BadUrl)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|_| FetchError::Resolve)?.collect();
    if addrs.is_empty() {
        return Err(FetchError::Resolve);
    }
    // Every address must pass, or a second lookup could pick the forbidden one.
    for a in &addrs {
        let allowed_loopback = dev_loopback && a.ip().is_loopback();
        if is_forbidden(a.ip()) && !allowed_loopback {
            return Err(FetchError::PrivateAddress);
        }
    }
    addrs.first().copied().ok_or(FetchError::Resolve)
}

/// GET `url` and return the body (at most [`MAX_BYTES`]).
pub async fn get(url: &str, dev_loopback: bool) -> Result<Vec<u8>, FetchError> {
    let mut current = Url::parse(url).map_err(|_| FetchError::BadUrl)?;
    for _ in 0..=MAX_REDIRECTS {
        check_url(&current, dev_loopback)?;
        let addr = resolve(&current, dev_loopback).await?;
        let host = current.host_str().ok_or(FetchError::BadUrl)?.to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // Connect to the address we checked, whatever DNS says next.
            .resolve(&host, addr)
            .build()
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let mut resp = client
            .get(current.clone())
            .header(http::header::ACCEPT, "application/json, application/jwk-set+json, application/jwt")
            .send()
            .await
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(FetchError::Status(status.as_u16()))?;
            current = current.join(loc).map_err(|_| FetchError::BadUrl)?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::Request(e.to_string()))? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(body);
    }
    Err(FetchError::TooManyRedirects)
}

/// POST `form` as application/x-www-form-urlencoded to `url` and return the response status.
/// Redirects are not followed (a 3xx is returned as it is); the body is not read.
pub async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    dev_loopback: bool,
    timeout: Duration,
) -> Result<u16, FetchError> {
    let target = Url::parse(url).map_err(|_| FetchError::BadUrl)?;
    check_url(&target, dev_loopback)?;
    let addr = resolve(&target, dev_loopback).await?;
    let host = target.host_str().ok_or(FetchError::BadUrl)?.to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        // Connect to the address we checked, whatever DNS says next.
        .resolve(&host, addr)
        .build()
        .map_err(|e| FetchError::Request(e.to_string()))?;
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let resp = client
        .post(target)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        // Without the URL: reqwest's errors name it, and the form may hold a token.
        .map_err(|e| FetchError::Request(e.without_url().to_string()))?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_ranges_are_forbidden() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn refuses_http_private_targets_and_garbage_without_connecting() {
        assert_eq!(get("http://example.com/jwks", false).await, Err(FetchError::NotHttps));
        assert_eq!(get("http://127.0.0.1:1/jwks", false).await, Err(FetchError::NotHttps));
        assert_eq!(get("https://127.0.0.1:1/jwks", false).await, Err(FetchError::PrivateAddress));
        assert_eq!(get("https://10.1.2.3/jwks", false).await, Err(FetchError::PrivateAddress));
        assert_eq!(get("https://[::1]/jwks", false).await, Err(FetchError::PrivateAddress));
        assert_eq!(get("https://169.254.169.254/latest/meta-data", true).await, Err(FetchError::PrivateAddress));
        assert_eq!(get("file:///etc/passwd", true).await, Err(FetchError::NotHttps));
        assert_eq!(get("not a url", true).await, Err(FetchError::BadUrl));
        // Development mode allows plain http to loopback only.
        assert_eq!(get("http://10.0.0.1/x", true).await, Err(FetchError::NotHttps));
    }

    #[tokio::test]
    async fn post_form_refuses_the_same_targets_without_connecting() {
        let t = Duration::from_secs(1);
        let form = [("logout_token", "x")];
        assert_eq!(post_form("http://example.com/bc", &form, false, t).await, Err(FetchError::NotHttps));
        assert_eq!(post_form("http://127.0.0.1:1/bc", &form, false, t).await, Err(FetchError::NotHttps));
        assert_eq!(post_form("https://127.0.0.1:1/bc", &form, false, t).await, Err(FetchError::PrivateAddress));
        assert_eq!(post_form("https://192.168.0.10/bc", &form, true, t).await, Err(FetchError::PrivateAddress));
        assert_eq!(post_form("http://10.0.0.1/bc", &form, true, t).await, Err(FetchError::NotHttps));
        assert_eq!(post_form("not a url", &form, true, t).await, Err(FetchError::BadUrl));
    }

    #[tokio::test]
    async fn post_form_sends_the_form_and_does_not_follow_redirects() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("logout_token=a%2Bb") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed early");
                got.extend_from_slice(&buf[..n]);
            }
            sock.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let status =
            post_form(&format!("http://{addr}/bc"), &[("logout_token", "a+b")], true, Duration::from_secs(5)).await;
        assert_eq!(status, Ok(302));
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /bc "), "{req}");
        assert!(req.to_ascii_lowercase().contains("content-type: application/x-www-form-urlencoded"), "{req}");
    }
}
