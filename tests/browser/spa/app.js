// A public client running in the browser (OAuth 2.0 for Browser-Based Apps): authorization
// code with PKCE S256 computed by crypto.subtle, then the token and UserInfo endpoints called
// cross-origin with fetch (CORS). It writes what it received into the page.
"use strict";

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

function jwtPayload(jwt) {
  const s = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(s + "=".repeat((4 - (s.length % 4)) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

function show(id, value) {
  const pre = document.createElement("pre");
  pre.id = id;
  pre.textContent = typeof value === "string" ? value : JSON.stringify(value);
  document.getElementById("out").append(pre);
}

async function start(cfg) {
  const verifier = random(32);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem("pending", JSON.stringify({ verifier, state, nonce }));
  const url = new URL(cfg.issuer + "/authorize");
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

async function finish(cfg, params) {
  const pending = JSON.parse(sessionStorage.getItem("pending") || "null");
  sessionStorage.removeItem("pending");
  // The code leaves the address bar (and the history) at once.
  history.replaceState(null, "", location.pathname);
  if (!pending || params.get("state") !== pending.state) throw new Error("state does not match");
  if (params.get("iss") !== cfg.issuer) throw new Error("iss does not match (RFC 9207)");
  if (params.get("error")) throw new Error("authorization failed: " + params.get("error"));

  const tr = await fetch(cfg.issuer + "/token", {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: cfg.redirect_uri,
      client_id: cfg.client_id,
      code_verifier: pending.verifier,
    }),
  });
  const tokens = await tr.json();
  if (!tr.ok) throw new Error("token endpoint: " + JSON.stringify(tokens));
  const claims = jwtPayload(tokens.id_token);
  if (claims.nonce !== pending.nonce) throw new Error("nonce does not match");

  const ur = await fetch(cfg.issuer + "/userinfo", { headers: { Authorization: "Bearer " + tokens.access_token } });
  const userinfo = await ur.json();
  if (!ur.ok) throw new Error("userinfo: " + JSON.stringify(userinfo));

  show("scope", tokens.scope);
  show("id-token", tokens.id_token);
  show("id-token-claims", claims);
  show("userinfo", userinfo);
  show("done", "signed in");
}

async function main() {
  const cfg = await (await fetch("/config.json")).json();
  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    await finish(cfg, params);
  } else {
    document.getElementById("start").addEventListener("click", () => start(cfg).catch(fail));
  }
}

function fail(e) {
  show("error", String(e && e.stack ? e.stack : e));
}

main().catch(fail);
