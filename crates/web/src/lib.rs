//! Shared HTTP plumbing for the endpoint crates: the application state, strict parameter
//! extraction, client authentication, sessions, error renderers, security headers, and the
//! capability records that discovery is assembled from.

pub mod audit;
pub mod backchannel;
pub mod capabilities;
pub mod client_auth;
pub mod client_ip;
pub mod clients;
pub mod cookies;
pub mod cors;
pub mod errors;
pub mod fetch;
pub mod headers;
pub mod interaction;
pub mod jwks_cache;
pub mod limits;
pub mod params;
pub mod passwords;
pub mod redirect;
pub mod state;
pub mod subject;

pub use capabilities::Capabilities;
pub use errors::{BackChannel, ErrorPage};
pub use params::{FormParams, ParamError, Params, QueryParams};
pub use passwords::Passwords;
pub use redirect::{CheckedRedirectUri, VerifiedRedirect};
pub use state::{AppState, AppStateInner};
