//! `autoshares-bff dev`: the whole stack in one process (README.md "Commands") — the sandbox,
//! the service on loopback with SQLite under `data/` and in-memory limits, generated keys,
//! a linked demo user, and a ready JWT with the curl lines to try it.

use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::json;

use crate::auth::mint_hs256;
use crate::config::{Layers, Settings, Sources, sandbox_listen};
use crate::identity::LinkStore;
use crate::ids::AutosharesUserId;
use crate::sandbox::{self, SandboxConfig};
use crate::startup::{self, Listeners};
use crate::telemetry;

const DEMO_SUBJECT: &str = "demo-user";
const DEMO_USER: AutosharesUserId = AutosharesUserId(1001);
const DEMO_TOKEN_TTL_S: u64 = 24 * 3600;

pub async fn run(sources: Sources) -> anyhow::Result<()> {
    let sandbox_address = sandbox_listen(&Layers::load(&sources)?)?;
    let sandbox_listener = TcpListener::bind(&sandbox_address)
        .with_context(|| format!("cannot listen on {sandbox_address}"))?;
    let sandbox_config = SandboxConfig::default();
    let sandbox = sandbox::start(sandbox_listener, sandbox_config.clone())?;

    let hs256_secret = random_base64(32);
    let sources = dev_layers(sources, &sandbox.base_url(), &sandbox_config, &hs256_secret);
    let settings = Settings::load(&sources)?;
    let telemetry = telemetry::init(&settings.log, Some(&settings.telemetry));

    let store = LinkStore::connect_lazy(&settings.database.url)?;
    store.migrate().await?;
    store.save_link(&DEMO_SUBJECT.into(), DEMO_USER).await?;
    let jwt = demo_token(
        &hs256_secret,
        &settings.auth.issuer,
        &settings.auth.audience,
    )?;

    let listeners = Listeners::bind(&settings.server.listen, &settings.server.admin_listen)?;
    let app = startup::build(settings, listeners).await?;
    print_banner(app.public_addr(), app.admin_addr(), sandbox.addr(), &jwt);
    let outcome = app.run_until(startup::termination_signal()).await;
    telemetry.shutdown();
    sandbox.stop().await;
    outcome
}

/// What `dev` changes (README.md "Commands"): the upstream is the sandbox, the keys are
/// generated, links live in SQLite under `data/` and limits in memory; listeners, issuer,
/// audience and log format are only defaults, which the configuration may change.
fn dev_layers(
    sources: Sources,
    sandbox_base_url: &str,
    sandbox: &SandboxConfig,
    hs256_secret: &str,
) -> Sources {
    let cleared = [
        "upstream.app_key_file",
        "upstream.password_file",
        "auth.hs256_secret_file",
        "auth.public_key_file",
        "auth.jwks_url",
        "auth.jwks_file",
        "verification.token_secret_file",
        "verification.previous_token_secrets",
        "database.url_file",
    ];
    let mut sources = sources
        .with_default("server.listen", "127.0.0.1:8080")
        .with_default("server.admin_listen", "127.0.0.1:9090")
        .with_default("auth.issuer", "autoshares-bff-dev")
        .with_default("auth.audience", "autoshares-bff")
        .with_default("log.format", "pretty")
        // One developer binding the demo number again and again is not SMS pumping.
        .with_default("abuse.prefix_budget", "off")
        .with("upstream.base_url", sandbox_base_url)
        .with("upstream.app_key", sandbox.app_key.as_str())
        .with("upstream.username", sandbox.username.as_str())
        .with("upstream.password", sandbox.password.as_str())
        .with("auth.hs256_secret", hs256_secret)
        .with("verification.token_secret", random_base64(32))
        .with("database.url", "sqlite://data/dev.db")
        .with("identity.source", "database")
        .with("rate_limit.backend", "memory");
    for key in cleared {
        sources = sources.with(key, "");
    }
    sources
}

fn random_base64(bytes: usize) -> String {
    let mut key = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut key).expect("the system random source is available");
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn demo_token(secret: &str, issuer: &str, audience: &str) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = json!({
        "sub": DEMO_SUBJECT, "iss": issuer, "aud": audience,
        "iat": now, "auth_time": now, "exp": now + DEMO_TOKEN_TTL_S,
    });
    Ok(mint_hs256(secret.as_bytes(), &claims)?)
}

fn print_banner(public: SocketAddr, admin: SocketAddr, sandbox: SocketAddr, jwt: &str) {
    let api = format!("http://{public}/v1/me/phone-number");
    println!(
        r#"
autoshares-bff dev is running (Ctrl-C stops it)
  public API  http://{public}
  admin       http://{admin}/readyz
  sandbox     http://{sandbox}/api   demo subject {DEMO_SUBJECT} is AutoShares user {DEMO_USER}

export TOKEN={jwt}

# 1. bind: AutoShares sends an SMS code
curl -sS -X PUT {api} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"phoneNumber": "+1 (310) 890-4569"}}'
# 2. the code the sandbox sent
curl -sS 'http://{sandbox}/sandbox/sms?phoneNumber=%2B13108904569'
# 3. verify, with verificationToken from 1 and code from 2
curl -sS -X POST {api}/verification -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"verificationToken": "<from 1>", "code": "<from 2>"}}'
# 4. read
curl -sS {api} -H "Authorization: Bearer $TOKEN"
# 5. unbind
curl -sS -X DELETE {api} -H "Authorization: Bearer $TOKEN"
"#
    );
}
