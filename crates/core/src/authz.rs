//! The validated authorization request, as stored between `/authorize` and the login and
//! consent pages.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// OIDC Core §3.1.2.1 `prompt`: `none` alone, or a set of interactive prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    None,
    Interactive(BTreeSet<InteractivePrompt>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InteractivePrompt {
    Login,
    Consent,
    SelectAccount,
}

impl Prompt {
    /// `none` together with any other value is an error (OIDC Core §3.1.2.1). Unknown values
    /// are ignored, so a newer prompt value (e.g. `create`) does not break a sign-in.
    pub fn parse(s: Option<&str>) -> Result<Self, &'static str> {
        let Some(s) = s else { return Ok(Prompt::Interactive(BTreeSet::new())) };
        let values: Vec<&str> = s.split(' ').filter(|v| !v.is_empty()).collect();
        if values.contains(&"none") {
            return if values.iter().all(|v| *v == "none") {
                Ok(Prompt::None)
            } else {
                Err("prompt=none cannot be combined with other values")
            };
        }
        let mut set = BTreeSet::new();
        for v in values {
            match v {
                "login" => set.insert(InteractivePrompt::Login),
                "consent" => set.insert(InteractivePrompt::Consent),
                "select_account" => set.insert(InteractivePrompt::SelectAccount),
                _ => false,
            };
        }
        Ok(Prompt::Interactive(set))
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Prompt::None)
    }

    pub fn has(&self, p: InteractivePrompt) -> bool {
        matches!(self, Prompt::Interactive(s) if s.contains(&p))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    Query,
    FormPost,
}

impl ResponseMode {
    pub fn parse(s: Option<&str>) -> Result<Self, &'static str> {
        match s {
            None | Some("query") => Ok(ResponseMode::Query),
            Some("form_post") => Ok(ResponseMode::FormPost),
            Some(_) => Err("unsupported response_mode"),
        }
    }
}

/// Everything `/authorize` validated, kept until the code is issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    /// Granted scope, space-separated.
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// `sub` of a verified `id_token_hint`.
    pub hint_sub: Option<String>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// The `claims` request parameter, as JSON.
    pub claims: Option<serde_json::Value>,
}

impl AuthorizationRequest {
    /// An OpenID Connect request (its scope holds `openid`).
    pub fn is_openid(&self) -> bool {
        crate::scope::is_openid(&self.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_none_stands_alone() {
        assert_eq!(Prompt::parse(Some("none")), Ok(Prompt::None));
        assert!(Prompt::parse(Some("none login")).is_err());
        let p = Prompt::parse(Some("login consent")).unwrap();
        assert!(p.has(InteractivePrompt::Login) && p.has(InteractivePrompt::Consent));
        assert!(!p.has(InteractivePrompt::SelectAccount));
        assert_eq!(Prompt::parse(Some("create")), Ok(Prompt::Interactive(BTreeSet::new())));
    }

    #[test]
    fn response_modes() {
        assert_eq!(ResponseMode::parse(None), Ok(ResponseMode::Query));
        assert_eq!(ResponseMode::parse(Some("form_post")), Ok(ResponseMode::FormPost));
        assert!(ResponseMode::parse(Some("fragment")).is_err());
    }
}
