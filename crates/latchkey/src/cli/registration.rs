//! `latchkey registration token`: initial access tokens for dynamic client registration.

use clap::Subcommand;
use latchkey_core::{Clock, SecretToken, Settings, SystemClock};
use serde_json::json;

use super::common::{Fail, audit, open_store, print_json, usage};

#[derive(Subcommand)]
pub(super) enum RegistrationCmd {
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

/// Longest lifetime of an initial access token: one year.
const MAX_INITIAL_TOKEN_LIFETIME: i64 = 365 * 86400;

pub(super) async fn run(cmd: RegistrationCmd, settings: &Settings) -> Result<(), Fail> {
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
