//! Records shared by the endpoint crates and the store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::clock::UnixTime;
use crate::secret::TokenHash;

/// How a client authenticates at the token endpoint (OIDC Core §9, RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl ClientAuthMethod {
    pub const ALL: [ClientAuthMethod; 3] =
        [ClientAuthMethod::ClientSecretBasic, ClientAuthMethod::ClientSecretPost, ClientAuthMethod::None];

    pub const fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::None => "none",
        }
    }

    pub const fn uses_secret(self) -> bool {
        match self {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => true,
            ClientAuthMethod::None => false,
        }
    }
}

impl FromStr for ClientAuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown token endpoint auth method `{s}`"))
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] =
        [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];

    pub const fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl FromStr for GrantType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| format!("unknown grant type `{s}`"))
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// JWS algorithms Latchkey can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum SigningAlg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [SigningAlg::RS256, SigningAlg::PS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| format!("unsupported signing algorithm `{s}`"))
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// Only for confidential clients; the secret itself is shown once at creation.
    pub secret_hash: Option<TokenHash>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub auth_method: ClientAuthMethod,
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub id_token_signed_response_alg: Option<SigningAlg>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }

    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grant_types.contains(&g)
    }
}

/// A user account. `id` is the stable, opaque subject identifier.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Further OpenID standard claims (given_name, locale, address, …).
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// OIDC Core §5.1 standard claims accepted for users, besides `email`, `email_verified`, `name`.
pub const STANDARD_USER_CLAIMS: &[&str] = &[
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
];

/// Validate a user-claims object: only standard claims, with the types OIDC Core §5.1 gives them.
pub fn validate_user_claims(claims: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    use serde_json::Value;
    for (k, v) in claims {
        match k.as_str() {
            "phone_number_verified" => {
                if !v.is_boolean() {
                    return Err(format!("claim `{k}` must be a boolean"));
                }
            }
            "address" => {
                let Value::Object(a) = v else { return Err("claim `address` must be a JSON object".into()) };
                for (ak, av) in a {
                    if !matches!(
                        ak.as_str(),
                        "formatted" | "street_address" | "locality" | "region" | "postal_code" | "country"
                    ) {
                        return Err(format!("unknown address member `{ak}`"));
                    }
                    if !av.is_string() {
                        return Err(format!("address member `{ak}` must be a string"));
                    }
                }
            }
            "updated_at" => {
                if !v.is_i64() {
                    return Err("claim `updated_at` must be a number of seconds".into());
                }
            }
            "email" | "email_verified" | "name" | "sub" => {
                return Err(format!("claim `{k}` is set by its own option, not as an extra claim"));
            }
            other if STANDARD_USER_CLAIMS.contains(&other) => {
                if !v.is_string() {
                    return Err(format!("claim `{k}` must be a string"));
                }
            }
            other => return Err(format!("`{other}` is not an OpenID Connect standard claim")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for m in ClientAuthMethod::ALL {
            assert_eq!(m.as_str().parse::<ClientAuthMethod>().unwrap(), m);
        }
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), g);
        }
        for a in SigningAlg::ALL {
            assert_eq!(a.as_str().parse::<SigningAlg>().unwrap(), a);
        }
        assert!("HS256".parse::<SigningAlg>().is_err());
    }

    #[test]
    fn user_claims_are_type_checked() {
        let ok = json!({"given_name": "Ada", "address": {"country": "UK"}, "phone_number_verified": true});
        assert!(validate_user_claims(ok.as_object().unwrap()).is_ok());
        let bad = json!({"address": "somewhere"});
        assert!(validate_user_claims(bad.as_object().unwrap()).is_err());
        let unknown = json!({"favourite_colour": "blue"});
        assert!(validate_user_claims(unknown.as_object().unwrap()).is_err());
        let reserved = json!({"sub": "x"});
        assert!(validate_user_claims(reserved.as_object().unwrap()).is_err());
    }
}
