//! Latchkey's innermost crate: domain types, the one OAuth/OIDC error type, the clock,
//! settings and their validation, secret tokens and their hashes, PKCE and redirect-URI
//! matching. It knows nothing of HTTP, SQL or JOSE.

pub mod authz;
pub mod claims;
pub mod clock;
pub mod error;
pub mod json;
pub mod model;
pub mod pkce;
pub mod redirect;
pub mod scope;
pub mod secret;
pub mod settings;
pub mod single_use;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use error::{ErrorCode, OAuthError};
pub use secret::{SecretToken, TokenHash};
pub use settings::Settings;
