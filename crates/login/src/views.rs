//! Page models for the askama templates.

use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginView<'a> {
    pub lang: &'a str,
    pub client_name: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentView<'a> {
    pub lang: &'a str,
    pub client_name: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub items: Vec<String>,
}

#[derive(Template)]
#[template(path = "select_account.html")]
pub struct SelectAccountView<'a> {
    pub lang: &'a str,
    pub client_name: &'a str,
    pub interaction: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutView<'a> {
    pub lang: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    /// The relying party that asked for the logout, when it is known.
    pub client_name: Option<&'a str>,
    /// RP-Initiated Logout parameters carried through the form.
    pub hidden: Vec<Hidden>,
}

/// A hidden form field.
pub struct Hidden {
    pub name: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorView<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    pub code: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessageView<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

/// A scope, in plain words, for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (a stable identifier for your account)".into(),
        "profile" => "See your profile: name, username, picture, birthdate, locale".into(),
        "email" => "See your email address".into(),
        "address" => "See your postal address".into(),
        "phone" => "See your phone number".into(),
        "groups" => "See your group memberships".into(),
        "roles" => "See your roles in this application".into(),
        "offline_access" => "Keep access to this information when you are not using the app".into(),
        other => format!("Access “{other}”"),
    }
}

/// A claim requested individually, in plain words.
pub fn describe_claim(claim: &str) -> String {
    if matches!(claim, "groups" | "roles") {
        return describe_scope(claim);
    }
    let words = claim.replace('_', " ");
    format!("See your {words}")
}
