//! The `latchkey` binary's library: configuration loading, the CLI, router composition,
//! discovery, JWKS, health, graceful shutdown and background jobs.

pub mod cli;
pub mod config;
pub mod discovery;
pub mod jobs;
pub mod server;

pub use server::{Server, StartupError};

/// `serve --demo` set-up (filled by issue "Sign in end to end").
pub async fn demo_hook(_state: &latchkey_web::AppState) -> Result<(), String> {
    Ok(())
}
