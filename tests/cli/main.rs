//! The CLI contract that scripts rely on, run as a separate process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::field_reassign_with_default,
    clippy::collapsible_if
)]

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod crash;
mod maintenance;
mod roles;
mod startup;
