//! Interoperability: the `openidconnect` crate as a real relying party against an in-process
//! server (discovery, authorization request with PKCE + nonce + state, code exchange, ID token
//! verification against the published JWKS, UserInfo), and the token lifecycle (refresh rotation,
//! introspection, revocation).
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

mod lifecycle;
mod rp;
