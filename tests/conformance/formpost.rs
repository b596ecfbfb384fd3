//! OpenID Connect Core: Form Post Basic Certification Profile: the Basic plan's modules with
//! response_mode=form_post. The flow-shaping modules are repeated here; the rest do not depend
//! on the response mode.
use crate::rp::Rp;
use crate::support::{Landing, hidden};

async fn form_post_code(rp: &Rp, extra: &[(&str, &str)]) -> (String, String) {
    let mut e = vec![("response_mode", "form_post")];
    e.extend_from_slice(extra);
    let (url, state, _, verifier) = rp.url("openid", &e, true);
    let l = rp.complete(rp.browser.navigate(&url).await).await;
    let Landing::Page(200, _, body) = l else { panic!("expected the form_post page, got {l:?}") };
    assert!(body.contains(&format!("action=\"{}\"", rp.client.redirect_uri)));
    assert_eq!(hidden(&body, "state").as_deref(), Some(state.as_str()));
    assert_eq!(hidden(&body, "iss").as_deref(), Some(rp.srv.base.as_str()));
    (hidden(&body, "code").expect("code posted"), verifier)
}

#[tokio::test]
async fn oidcc_server_form_post() {
    let rp = Rp::new().await;
    let (code, verifier) = form_post_code(&rp, &[]).await;
    let r = rp.srv.redeem(&rp.client, &code, &verifier).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oidcc_codereuse_form_post() {
    let rp = Rp::new().await;
    let (code, verifier) = form_post_code(&rp, &[]).await;
    assert_eq!(rp.srv.redeem(&rp.client, &code, &verifier).await.status(), 200);
    assert_eq!(rp.srv.redeem(&rp.client, &code, &verifier).await.status(), 400);
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in_form_post() {
    let rp = Rp::new().await;
    let (url, state, _, _) = rp.url("openid", &[("response_mode", "form_post"), ("prompt", "none")], true);
    let Landing::Page(200, _, body) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(hidden(&body, "error").as_deref(), Some("login_required"));
    assert_eq!(hidden(&body, "state").as_deref(), Some(state.as_str()));
}

#[tokio::test]
async fn oidcc_response_type_missing_form_post() {
    let rp = Rp::new().await;
    let (url, ..) = rp.url("openid", &[("response_mode", "form_post")], true);
    let url = url.replace("response_type=code&", "");
    let Landing::Page(200, _, body) = rp.browser.navigate(&url).await else { panic!() };
    assert_eq!(hidden(&body, "error").as_deref(), Some("invalid_request"));
}
