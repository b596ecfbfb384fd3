//! Which claims a relying party gets: by scope (OIDC Core §5.4) and by the `claims` request
//! parameter (OIDC Core §5.5), for the ID token or UserInfo.

use serde_json::{Map, Value};

use crate::model::{Memberships, User};
use crate::scope::Scope;

/// The `claims` request parameter, parsed: for each target, the requested claim names with
/// their (optional) requirements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimsRequest {
    pub userinfo: Map<String, Value>,
    pub id_token: Map<String, Value>,
}

impl ClaimsRequest {
    /// OIDC Core §5.5: a JSON object with optional `userinfo` and `id_token` members, each an
    /// object whose members are claim names mapped to `null` or an object with `essential`
    /// (boolean), `value` or `values` (array). Strict JSON: no repeated member names, bounded
    /// nesting ([`crate::json`]).
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let top = crate::json::parse_object(s.as_bytes(), crate::json::MAX_DEPTH).map_err(|e| match e {
            crate::json::JsonError::NotObject => "claims must be a JSON object",
            crate::json::JsonError::Duplicate => "claims repeats a member name",
            crate::json::JsonError::TooDeep => "claims is nested too deep",
            crate::json::JsonError::Invalid => "claims is not valid JSON",
            crate::json::JsonError::Nul => "claims holds U+0000",
        })?;
        let mut out = ClaimsRequest::default();
        for (k, v) in top {
            let target = match k.as_str() {
                "userinfo" => &mut out.userinfo,
                "id_token" => &mut out.id_token,
                _ => continue, // other members are ignored (OIDC Core §5.5)
            };
            let Value::Object(members) = v else { return Err("claims members must be JSON objects") };
            for (name, req) in members {
                match &req {
                    Value::Null => {}
                    Value::Object(o) => {
                        if o.get("essential").is_some_and(|e| !e.is_boolean()) {
                            return Err("essential must be a boolean");
                        }
                        if o.get("values").is_some_and(|e| !e.is_array()) {
                            return Err("values must be an array");
                        }
                    }
                    _ => return Err("a requested claim must be null or an object"),
                }
                target.insert(name, req);
            }
        }
        Ok(out)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.userinfo.is_empty() {
            m.insert("userinfo".into(), Value::Object(self.userinfo.clone()));
        }
        if !self.id_token.is_empty() {
            m.insert("id_token".into(), Value::Object(self.id_token.clone()));
        }
        Value::Object(m)
    }

    pub fn from_json(v: &Value) -> Self {
        let get = |k: &str| v.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
        Self { userinfo: get("userinfo"), id_token: get("id_token") }
    }

    /// Every claim name requested anywhere (for the consent page).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.userinfo.keys().chain(self.id_token.keys()).map(String::as_str)
    }

    /// The request without the user claims this client may not have: those no scope it is
    /// registered for carries are silently omitted (OIDC Core §5.5 lets the OP leave out
    /// requested claims). Protocol claims (`acr`, `auth_time`, …) stay: they never come from the
    /// user record.
    pub fn within(mut self, client_scopes: &[String]) -> Self {
        let keep = |name: &String, _: &mut Value| is_protocol_claim(name) || client_may_have(name, client_scopes);
        self.userinfo.retain(keep);
        self.id_token.retain(keep);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.userinfo.is_empty() && self.id_token.is_empty()
    }
}

/// Is the client registered for a scope that carries this claim? The `claims` parameter never
/// reaches further than that (issue 13): a client registered for `openid` alone gets no
/// `email` by naming it.
pub fn client_may_have(name: &str, client_scopes: &[String]) -> bool {
    client_scopes.iter().any(|s| claims_for_scope(s).contains(&name))
}

pub const PROFILE_CLAIMS: &[&str] = &[
    "name",
    "family_name",
    "given_name",
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
    "updated_at",
];

/// OIDC Core §5.4: the claims a scope value requests.
pub fn claims_for_scope(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => PROFILE_CLAIMS,
        "email" => &["email", "email_verified"],
        "address" => &["address"],
        "phone" => &["phone_number", "phone_number_verified"],
        "groups" => &["groups"],
        "roles" => &["roles"],
        _ => &[],
    }
}

/// Every claim Latchkey can release (discovery's `claims_supported`).
pub fn supported_claims() -> Vec<&'static str> {
    let mut v = vec!["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash"];
    for s in ["profile", "email", "address", "phone", "groups", "roles"] {
        v.extend_from_slice(claims_for_scope(s));
    }
    v
}

/// Claims resolved from group memberships and role grants at issuance, never from the user
/// record: `groups` and `roles` (the names RFC 9068 §2.2.3.1 takes from SCIM).
pub const MEMBERSHIP_CLAIMS: &[&str] = &["groups", "roles"];

/// Which membership claims a token or response carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipClaims {
    pub groups: bool,
    pub roles: bool,
}

impl MembershipClaims {
    /// Those the granted scope asks for (`groups`, `roles`).
    pub fn for_scope(scope: &Scope) -> Self {
        Self { groups: scope.contains("groups"), roles: scope.contains("roles") }
    }

    /// Also those the `claims` parameter names for this target (OIDC Core §5.5), but only when
    /// the client may request the matching scope: the parameter never reaches further than
    /// the scopes a client is registered for.
    pub fn with_requested(self, requested: &Map<String, Value>, client_scopes: &[String]) -> Self {
        let may = |name: &str| requested.contains_key(name) && client_may_have(name, client_scopes);
        Self { groups: self.groups || may("groups"), roles: self.roles || may("roles") }
    }

    pub fn union(self, other: Self) -> Self {
        Self { groups: self.groups || other.groups, roles: self.roles || other.roles }
    }

    pub fn any(self) -> bool {
        self.groups || self.roles
    }

    /// Put the wanted lists into `claims` (an empty list when the user has none: present
    /// whenever asked for, so `roles.includes(…)` needs no null check).
    pub fn insert(self, claims: &mut Map<String, Value>, m: &Memberships) {
        if self.groups {
            claims.insert("groups".into(), Value::from(m.groups.clone()));
        }
        if self.roles {
            claims.insert("roles".into(), Value::from(m.roles.clone()));
        }
    }
}

/// A user's value for a claim, if they have one.
pub fn user_claim(user: &User, name: &str) -> Option<Value> {
    match name {
        "sub" => Some(Value::String(user.id.clone())),
        "email" => user.email.clone().map(Value::String),
        "email_verified" => user.email.as_ref().map(|_| Value::Bool(user.email_verified)),
        "name" => user.name.clone().map(Value::String),
        "preferred_username" => {
            Some(user.claims.get("preferred_username").cloned().unwrap_or_else(|| Value::String(user.username.clone())))
        }
        "updated_at" => Some(user.claims.get("updated_at").cloned().unwrap_or(Value::from(user.updated_at))),
        other => user.claims.get(other).cloned(),
    }
}

/// User claims for one target: everything the granted scopes cover (when `include_scope_claims`)
/// plus what the `claims` request names for this target, that the user has and that a scope
/// the client is registered for carries ([`client_may_have`]; checked again here, at release,
/// so a registration narrowed since the request also narrows what its grants release).
pub fn select(
    user: &User,
    scope: &Scope,
    requested: &Map<String, Value>,
    include_scope_claims: bool,
    client_scopes: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    if include_scope_claims {
        for s in scope.iter() {
            for name in claims_for_scope(s).iter().filter(|n| !MEMBERSHIP_CLAIMS.contains(n)) {
                if let Some(v) = user_claim(user, name) {
                    out.insert((*name).to_owned(), v);
                }
            }
        }
    }
    for name in requested.keys() {
        let resolved_elsewhere = MEMBERSHIP_CLAIMS.contains(&name.as_str());
        if !supported_claims().contains(&name.as_str()) || is_protocol_claim(name) || resolved_elsewhere {
            continue;
        }
        if !client_may_have(name, client_scopes) {
            continue;
        }
        // OIDC Core §5.5.1: `value`/`values` express a preference; the user's real value is
        // released either way (it is never replaced by the requested one).
        if let Some(v) = user_claim(user, name) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Claims the server sets itself in tokens; never taken from the user record.
fn is_protocol_claim(name: &str) -> bool {
    matches!(
        name,
        "sub" | "iss" | "aud" | "exp" | "iat" | "auth_time" | "nonce" | "acr" | "amr" | "azp" | "sid" | "at_hash"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> User {
        User {
            id: "u1".into(),
            username: "ada".into(),
            password_hash: String::new(),
            email: Some("ada@example.com".into()),
            email_verified: true,
            name: Some("Ada".into()),
            claims: json!({"given_name": "Ada", "address": {"country": "UK"}}).as_object().unwrap().clone(),
            created_at: 1,
            updated_at: 2,
        }
    }

    fn all_scopes() -> Vec<String> {
        ["openid", "profile", "email", "address", "phone", "groups", "roles"].map(String::from).to_vec()
    }

    /// Issue 13: a client registered for `openid` only received `email`, `phone_number` and
    /// `name` by naming them in the `claims` parameter.
    #[test]
    fn the_claims_parameter_never_reaches_beyond_the_registered_scopes() {
        let u = user();
        let req = json!({"email": null, "phone_number": null, "name": {"essential": true}, "address": null});
        let openid_only = vec!["openid".to_owned()];
        let out = select(&u, &Scope::parse("openid").unwrap(), req.as_object().unwrap(), true, &openid_only);
        assert!(out.is_empty(), "{out:?}");
        let with_email = vec!["openid".to_owned(), "email".to_owned()];
        let out = select(&u, &Scope::parse("openid").unwrap(), req.as_object().unwrap(), true, &with_email);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["email"]);
        let c = ClaimsRequest::parse(
            r#"{"id_token": {"email": null, "acr": {"essential": true}}, "userinfo": {"name": null}}"#,
        )
        .unwrap()
        .within(&openid_only);
        assert_eq!(c.id_token.keys().collect::<Vec<_>>(), ["acr"], "protocol claims stay");
        assert!(c.userinfo.is_empty());
        assert!(!c.is_empty());
        assert!(ClaimsRequest::parse(r#"{"userinfo": {"name": null}}"#).unwrap().within(&openid_only).is_empty());
    }

    #[test]
    fn claims_parameter_is_validated() {
        assert!(ClaimsRequest::parse("not json").is_err());
        assert!(ClaimsRequest::parse("[]").is_err());
        assert!(ClaimsRequest::parse(r#"{"userinfo": 5}"#).is_err());
        assert!(ClaimsRequest::parse(r#"{"id_token": {"email": {"essential": "yes"}}}"#).is_err());
        // Issue 7 (hostile input): a repeated target or claim could be read two ways; refused.
        assert_eq!(
            ClaimsRequest::parse(r#"{"id_token": {"email": null}, "id_token": {"name": null}}"#),
            Err("claims repeats a member name")
        );
        assert_eq!(
            ClaimsRequest::parse(r#"{"userinfo": {"email": null, "email": {"essential": true}}}"#),
            Err("claims repeats a member name")
        );
        let deep = format!("{{\"userinfo\": {{\"a\": {{\"value\": {}1{}}}}}}}", "[".repeat(20), "]".repeat(20));
        assert_eq!(ClaimsRequest::parse(&deep), Err("claims is nested too deep"));
        let c = ClaimsRequest::parse(r#"{"id_token": {"email": {"essential": true}}, "userinfo": {"name": null}}"#)
            .unwrap();
        assert!(c.id_token.contains_key("email"));
        assert!(c.userinfo.contains_key("name"));
    }

    #[test]
    fn scopes_select_their_claims_only() {
        let u = user();
        let email_only = select(&u, &Scope::parse("openid email").unwrap(), &Map::new(), true, &all_scopes());
        assert_eq!(email_only.get("email"), Some(&json!("ada@example.com")));
        assert_eq!(email_only.get("email_verified"), Some(&json!(true)));
        assert!(email_only.get("name").is_none());
        let none = select(&u, &Scope::parse("openid email").unwrap(), &Map::new(), false, &all_scopes());
        assert!(none.is_empty());
    }

    #[test]
    fn claims_request_adds_individual_claims_but_never_protocol_ones() {
        let u = user();
        let req = json!({"given_name": null, "sub": {"value": "evil"}, "address": {"essential": true}});
        let out = select(&u, &Scope::parse("openid").unwrap(), req.as_object().unwrap(), false, &all_scopes());
        assert_eq!(out.get("given_name"), Some(&json!("Ada")));
        assert_eq!(out.get("address"), Some(&json!({"country": "UK"})));
        assert!(out.get("sub").is_none());
    }

    #[test]
    fn membership_claims_never_come_from_the_user_record() {
        let mut u = user();
        u.claims.insert("roles".into(), json!(["forged"]));
        let req = json!({"roles": null, "groups": null});
        let out =
            select(&u, &Scope::parse("openid groups roles").unwrap(), req.as_object().unwrap(), true, &all_scopes());
        assert!(out.get("roles").is_none() && out.get("groups").is_none(), "{out:?}");
    }

    #[test]
    fn membership_claims_follow_scope_and_claims_parameter_within_the_client_scopes() {
        let none = MembershipClaims::for_scope(&Scope::parse("openid profile").unwrap());
        assert!(!none.any());
        let roles = MembershipClaims::for_scope(&Scope::parse("openid roles").unwrap());
        assert_eq!(roles, MembershipClaims { groups: false, roles: true });
        let req = json!({"groups": null, "roles": {"essential": true}});
        let allowed: Vec<String> = vec!["openid".into(), "groups".into()];
        let asked = none.with_requested(req.as_object().unwrap(), &allowed);
        assert_eq!(asked, MembershipClaims { groups: true, roles: false }, "roles is not among the client's scopes");
        assert_eq!(roles.union(asked), MembershipClaims { groups: true, roles: true });
        let mut claims = Map::new();
        let m = Memberships { groups: vec!["eng".into()], roles: vec![] };
        MembershipClaims { groups: true, roles: true }.insert(&mut claims, &m);
        assert_eq!(Value::Object(claims), json!({"groups": ["eng"], "roles": []}));
        assert!(supported_claims().contains(&"groups") && supported_claims().contains(&"roles"));
    }
}
