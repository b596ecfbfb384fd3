//! The OpenID Foundation's OP test plans, mirrored: one test per conformance-suite module that
//! applies, named after it (`oidcc-server` → `oidcc_server`), checking what that module checks.
//! `README.md` beside this file maps module → test → status.
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

mod basic;
mod config;
mod dynamic;
mod formpost;
mod logout;
mod rp;
