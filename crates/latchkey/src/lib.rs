//! The `latchkey` binary's library: configuration loading, the CLI, router composition,
//! discovery, JWKS, health, graceful shutdown and background jobs.

pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod guard;
pub mod jobs;
pub mod metrics;
pub mod server;

pub use server::{Server, StartupError};
