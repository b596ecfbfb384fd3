//! End-to-end tests in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, via fantoccini) against the demo relying party of `serve --demo`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`);
//! when either is missing the tests fail, they never skip.
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

mod driver;
mod flows;
mod spa;
