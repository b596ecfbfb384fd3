//! Black-box HTTP tests against an in-process server on a random loopback port.
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

mod assertions;
mod authorize;
mod binding;
mod cluster;
mod cors;
mod demo;
mod discovery;
mod fuzz;
mod keys;
mod lifecycle;
mod limits;
mod login;
mod logout;
mod metrics;
mod operations;
mod pairwise;
mod registration;
mod request_objects;
mod roles;
mod signin;
mod token;
mod userinfo;
