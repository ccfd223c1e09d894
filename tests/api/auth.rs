use std::io::Write as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::{ClosedPort, spawn_routes_on};
use crate::helpers::{
    AUDIENCE, ISSUER, Options, TestApp, now, spawn_app, spawn_with, wait_for_status,
};

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A P-256 key: its signing key and its public JWK named `kid`.
struct EcKey {
    encoding: EncodingKey,
    jwk: Value,
    kid: String,
}

impl EcKey {
    fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
            kid: kid.to_owned(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).unwrap()
    }
}

fn valid_claims(subject: &str) -> Value {
    json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600})
}

fn assert_unauthenticated(answer: &crate::helpers::Answer, token_sent: bool, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.text);
    answer.assert_problem(401, "unauthenticated");
    let challenge = answer
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no challenge"));
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
    assert_eq!(
        challenge.contains(r#"error="invalid_token""#),
        token_sent,
        "{what}: {challenge}"
    );
}

#[actix_web::test]
async fn every_bad_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    app.linked_caller("sub-1", 1001).await;
    let claims = |changes: Value| {
        let mut claims = app.claims("sub-1");
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let other_secret = encode(
        &Header::default(),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another-secret"),
    )
    .unwrap();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let oversized = app.jwt(claims(json!({"padding": "x".repeat(9 * 1024)})));
    let cases: Vec<(String, &str)> = vec![
        ("garbage".to_owned(), "garbage"),
        ("a.b.c".to_owned(), "three parts of garbage"),
        (app.jwt(claims(json!({"exp": now() - 3600}))), "expired"),
        (
            app.jwt(claims(json!({"iss": "https://evil.example"}))),
            "wrong iss",
        ),
        (
            app.jwt(claims(json!({"aud": "another-service"}))),
            "wrong aud",
        ),
        (unsigned, "alg none"),
        (other_secret, "wrong HS256 secret"),
        (app.jwt(claims(json!({"exp": null}))), "no exp"),
        (app.jwt(claims(json!({"sub": null}))), "no sub"),
        (app.jwt(claims(json!({"sub": ""}))), "empty sub"),
        (
            app.jwt(claims(json!({"nbf": now() + 3600}))),
            "not valid yet",
        ),
        (oversized, "over 8 KiB"),
    ];
    for (token, what) in cases {
        let answer = app.get_with_bearer(Some(&token)).await;
        assert_unauthenticated(&answer, true, what);
    }
    assert_unauthenticated(&app.get_with_bearer(None).await, false, "no header");
    let url = format!("{}/v1/me/phone-number", app.public);
    let basic = app
        .send(
            "GET",
            &url,
            None,
            None,
            &[("Authorization", "Basic dXNlcjpwYXNz")],
        )
        .await;
    assert_unauthenticated(&basic, false, "basic scheme");
    assert_eq!(app.sandbox().requests().len(), 0, "AutoShares never called");
}

#[actix_web::test]
async fn leeway_accepts_a_token_that_just_expired() {
    let app = spawn_app().await;
    let caller = app.linked_caller("sub-1", 1001).await;
    let mut claims = app.claims(&caller.subject);
    claims["exp"] = json!(now() - 5);
    let answer = app.get_with_bearer(Some(&app.jwt(claims))).await;
    assert_ne!(answer.status, 401, "within auth.leeway_s: {}", answer.text);
}

#[actix_web::test]
async fn a_pem_key_accepts_its_own_algorithm_and_refuses_hs256_signed_with_it() {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let private_pem = pem(
        "PRIVATE KEY",
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .unwrap()
            .as_ref(),
    );
    let public_der =
        AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    let public_pem = pem("PUBLIC KEY", public_der.as_ref());
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("jwt.pem");
    std::fs::write(&key_path, &public_pem).unwrap();
    let app = spawn_with(
        Options::default()
            .with("auth.hs256_secret", "")
            .with("auth.public_key_file", key_path.to_str().unwrap()),
    )
    .await;
    app.linked_caller("sub-1", 1001).await;

    let rs256 = encode(
        &Header::new(Algorithm::RS256),
        &valid_claims("sub-1"),
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let accepted = app.get_with_bearer(Some(&rs256)).await;
    assert_ne!(
        accepted.status, 401,
        "RS256 with the configured key: {}",
        accepted.text
    );

    let confused = encode(
        &Header::new(Algorithm::HS256),
        &valid_claims("sub-1"),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_unauthenticated(
        &app.get_with_bearer(Some(&confused)).await,
        true,
        "HS256 against an RSA key",
    );
}

/// Serves whatever JWKS the test puts in the box, counting fetches.
fn jwks_server(document: Arc<Mutex<Value>>, fetches: Arc<AtomicUsize>) -> String {
    jwks_server_on(TcpListener::bind("127.0.0.1:0").unwrap(), document, fetches)
}

fn jwks_server_on(
    listener: TcpListener,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
) -> String {
    let addr = spawn_routes_on(listener, move |config| {
        let document = document.clone();
        let fetches = fetches.clone();
        config.route(
            "/jwks.json",
            web::get().to(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = document.lock().unwrap().clone();
                async move { HttpResponse::Ok().json(body) }
            }),
        );
    });
    format!("http://{addr}/jwks.json")
}

async fn accepted(app: &TestApp, token: &str) -> bool {
    app.get_with_bearer(Some(token)).await.status != 401
}

#[actix_web::test]
async fn a_jwks_url_key_rotation_is_picked_up_without_restart() {
    let first = EcKey::generate("key-1");
    let second = EcKey::generate("key-2");
    let third = EcKey::generate("key-3");
    let document = Arc::new(Mutex::new(json!({"keys": [first.jwk.clone()]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(document.clone(), fetches.clone());
    let app = spawn_with(
        Options::default()
            .with("auth.hs256_secret", "")
            .with("auth.jwks_url", url),
    )
    .await;
    app.linked_caller("sub-1", 1001).await;
    wait_for_status(&app, "/readyz", 200).await;

    assert!(
        accepted(&app, &first.sign(&valid_claims("sub-1"))).await,
        "the first key"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch at start");

    *document.lock().unwrap() = json!({"keys": [first.jwk.clone(), second.jwk.clone()]});
    assert!(
        accepted(&app, &second.sign(&valid_claims("sub-1"))).await,
        "an unknown kid refetches"
    );
    assert!(
        accepted(&app, &first.sign(&valid_claims("sub-1"))).await,
        "old key still listed"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    *document.lock().unwrap() = json!({"keys": [third.jwk.clone()]});
    assert!(
        !accepted(&app, &third.sign(&valid_claims("sub-1"))).await,
        "within 10 s of a refetch"
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "the floor holds for every kid"
    );

    let hs256 = app.jwt(valid_claims("sub-1"));
    assert!(
        !accepted(&app, &hs256).await,
        "HS256 never accepted against a JWKS"
    );
}

#[actix_web::test]
async fn a_jwks_file_key_rotation_is_picked_up_on_the_first_unknown_kid() {
    let first = EcKey::generate("file-1");
    let second = EcKey::generate("file-2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({"keys": [first.jwk.clone()]}).to_string()).unwrap();
    let app = spawn_with(
        Options::default()
            .with("auth.hs256_secret", "")
            .with("auth.jwks_file", path.to_str().unwrap()),
    )
    .await;
    app.linked_caller("sub-1", 1001).await;
    wait_for_status(&app, "/readyz", 200).await;
    assert!(
        accepted(&app, &first.sign(&valid_claims("sub-1"))).await,
        "the first key"
    );

    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(json!({"keys": [second.jwk.clone()]}).to_string().as_bytes())
        .unwrap();
    drop(file);

    assert!(
        accepted(&app, &second.sign(&valid_claims("sub-1"))).await,
        "the new kid triggers a refetch"
    );
    assert!(
        !accepted(&app, &first.sign(&valid_claims("sub-1"))).await,
        "the removed key is gone"
    );
}

/// An app whose JWKS URL is a closed port on this machine, and that port.
async fn app_with_jwks_down() -> (TestApp, ClosedPort) {
    let closed = ClosedPort::new();
    let app = spawn_with(Options::default().with("auth.hs256_secret", "").with(
        "auth.jwks_url",
        format!("http://{}/jwks.json", closed.addr()),
    ))
    .await;
    (app, closed)
}

#[actix_web::test]
async fn without_a_first_jwks_every_token_is_401_and_readyz_is_503() {
    let (app, _) = app_with_jwks_down().await;
    let key = EcKey::generate("never-published");
    let answer = app
        .get_with_bearer(Some(&key.sign(&valid_claims("sub-1"))))
        .await;
    assert_unauthenticated(&answer, true, "no key set yet");
    let ready = app.admin_get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["jwks"], "down");
    assert_eq!(
        app.admin_get("/healthz", None).await.status,
        200,
        "the process serves"
    );
}

#[actix_web::test]
async fn a_jwks_url_down_at_start_is_picked_up_within_seconds_of_coming_up() {
    let (app, closed) = app_with_jwks_down().await;
    app.linked_caller("sub-1", 1001).await;
    let key = EcKey::generate("late-key");
    let token = key.sign(&valid_claims("sub-1"));
    assert!(!accepted(&app, &token).await, "no key set yet");
    assert_eq!(app.admin_get("/readyz", None).await.json()["jwks"], "down");

    let document = Arc::new(Mutex::new(json!({"keys": [key.jwk.clone()]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    jwks_server_on(closed.listen(), document, fetches);

    let ready = wait_for_status(&app, "/readyz", 200).await;
    assert_eq!(ready.json()["jwks"], "ok");
    assert!(
        accepted(&app, &token).await,
        "the key set loaded without a restart"
    );
}

#[actix_web::test]
async fn a_refresh_with_only_unusable_keys_keeps_the_last_good_set() {
    let good = EcKey::generate("good");
    let mut encrypting = EcKey::generate("encrypting").jwk;
    encrypting["use"] = json!("enc");
    let document = Arc::new(Mutex::new(json!({"keys": [good.jwk.clone()]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(document.clone(), fetches.clone());
    let app = spawn_with(
        Options::default()
            .with("auth.hs256_secret", "")
            .with("auth.jwks_url", url)
            .with("auth.jwks_refresh_s", "1"),
    )
    .await;
    app.linked_caller("sub-1", 1001).await;
    wait_for_status(&app, "/readyz", 200).await;

    // The provider now lists only a key for encryption, and a symmetric one.
    *document.lock().unwrap() =
        json!({"keys": [encrypting, {"kty": "oct", "k": "c2VjcmV0", "kid": "symmetric"}]});
    let seen = fetches.load(Ordering::SeqCst);
    for _ in 0..50 {
        if fetches.load(Ordering::SeqCst) >= seen + 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(fetches.load(Ordering::SeqCst) >= seen + 2, "two refreshes");
    assert!(
        accepted(&app, &good.sign(&valid_claims("sub-1"))).await,
        "the last good set is still in use"
    );
    assert_eq!(app.admin_get("/readyz", None).await.status, 200);
}

#[actix_web::test]
async fn a_key_set_with_no_usable_key_is_not_ready() {
    let mut encrypting = EcKey::generate("encrypting").jwk;
    encrypting["use"] = json!("enc");
    let document = Arc::new(Mutex::new(json!({"keys": [encrypting.clone()]})));
    let url = jwks_server(document, Arc::new(AtomicUsize::new(0)));
    let app = spawn_with(
        Options::default()
            .with("auth.hs256_secret", "")
            .with("auth.jwks_url", url),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ready = app.admin_get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["jwks"], "down");
}
