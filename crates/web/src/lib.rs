//! Shared HTTP plumbing for the endpoint crates: the application state, strict parameter
//! extraction, client authentication, sessions, error renderers, security headers, and the
//! capability records that discovery is assembled from.

pub mod capabilities;
pub mod errors;
pub mod headers;
pub mod params;
pub mod passwords;
pub mod state;

pub use capabilities::Capabilities;
pub use errors::{BackChannel, ErrorPage};
pub use params::{FormParams, ParamError, Params, QueryParams};
pub use passwords::Passwords;
pub use state::{AppState, AppStateInner};
