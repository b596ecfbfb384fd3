//! `latchkey client add|list|show|update|remove`: registered relying parties.

use clap::{Args, Subcommand};
use latchkey_core::model::{AccessTokenFormat, Client, ClientAuthMethod, GrantType, SigningAlg};
use latchkey_core::redirect::validate_for_registration;
use latchkey_core::scope::Scope;
use latchkey_core::{Clock, SecretToken, Settings, SystemClock};
use latchkey_storage::Created;
use serde_json::{Value, json};
use std::path::PathBuf;

use super::common::{Fail, audit, dedup, master_key, open_store, print_json, print_pretty, runtime, usage};

#[derive(Subcommand)]
pub(super) enum ClientCmd {
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
pub(super) struct ClientAdd {
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
pub(super) struct ClientUpdate {
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

pub(super) async fn run(cmd: ClientCmd, settings: &Settings) -> Result<(), Fail> {
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
