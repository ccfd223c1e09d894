//! The command line of README.md "Commands", driven through the built binary.

use std::path::Path;
use std::process::{Command, Output};

use jsonwebtoken::{DecodingKey, Validation, decode};
use serde_json::{Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_autoshares-bff");

/// Runs the binary in `dir` with only the given `BFF__` variables.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("BFF") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_configuration_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve"], &[]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output),
        "configuration: upstream.base_url is required\n"
    );

    let output = run(
        dir.path(),
        &["serve"],
        &[
            ("BFF__UPSTREAM__BASE_URL", "http://127.0.0.1:9/api"),
            ("BFF__UPSTREAM__APP_KEY", "k"),
            ("BFF__UPSTREAM__USERNAME", "u"),
            ("BFF__UPSTREAM__PASSWORD", "p"),
            ("BFF__UPSTREAM__TIMEOUT_MS", "soon"),
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("configuration: ") && message.contains("upstream.timeout_ms"),
        "{message}"
    );
}

#[test]
fn a_config_file_given_by_flag_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.toml");
    std::fs::write(&file, "[auth]\nissuer = \"file-issuer\"\naudience = \"file-aud\"\nhs256_secret = \"file-secret-of-at-least-32-bytes-0123\"\n").unwrap();
    let output = run(
        dir.path(),
        &[
            "--config",
            file.to_str().unwrap(),
            "token",
            "mint",
            "--sub",
            "s",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let mut validation = Validation::default();
    validation.set_audience(&["file-aud"]);
    validation.set_issuer(&["file-issuer"]);
    let token = stdout(&output);
    decode::<Map<String, Value>>(
        token.trim(),
        &DecodingKey::from_secret(b"file-secret-of-at-least-32-bytes-0123"),
        &validation,
    )
    .unwrap();
}

/// The claims of a token `token mint` printed with the `CLI_ENV` settings.
fn decode_cli_token(printed: &str) -> jsonwebtoken::TokenData<Map<String, Value>> {
    let mut validation = Validation::default();
    validation.set_audience(&["aud-cli"]);
    validation.set_issuer(&["iss-cli"]);
    decode::<Map<String, Value>>(
        printed.trim(),
        &DecodingKey::from_secret(b"cli-secret-of-at-least-32-bytes-01234"),
        &validation,
    )
    .unwrap()
}

/// The settings both `token mint` tests run with.
const CLI_ENV: [(&str, &str); 3] = [
    ("BFF__AUTH__ISSUER", "iss-cli"),
    ("BFF__AUTH__AUDIENCE", "aud-cli"),
    (
        "BFF__AUTH__HS256_SECRET",
        "cli-secret-of-at-least-32-bytes-01234",
    ),
];

#[test]
fn token_mint_prints_a_token_with_typed_claims() {
    let dir = tempfile::tempdir().unwrap();
    let env = CLI_ENV;
    let output = run(
        dir.path(),
        &[
            "token",
            "mint",
            "--sub",
            "user-7",
            "--ttl",
            "30m",
            "--claim",
            "autoshares_user_id=1925",
            "--claim",
            "role=a1",
        ],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert_eq!(printed.lines().count(), 1, "the token alone: {printed}");
    let data = decode_cli_token(&printed);
    assert_eq!(data.claims["sub"], "user-7");
    assert_eq!(data.claims["autoshares_user_id"], 1925);
    assert_eq!(data.claims["role"], "a1");
    let lifetime = data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 1800);
    assert_eq!(
        data.claims["auth_time"], data.claims["iat"],
        "a fresh login"
    );
    assert!(data.claims.get("acr").is_none());
}

#[test]
fn token_mint_sets_the_login_age_and_acr_for_step_up() {
    let dir = tempfile::tempdir().unwrap();
    let env = CLI_ENV;
    let args = [
        "token",
        "mint",
        "--sub",
        "u",
        "--auth-age",
        "20m",
        "--acr",
        "mfa",
    ];
    let output = run(dir.path(), &args, &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let data = decode_cli_token(&stdout(&output));
    let age = data.claims["iat"].as_u64().unwrap() - data.claims["auth_time"].as_u64().unwrap();
    assert_eq!(age, 1200);
    assert_eq!(data.claims["acr"], "mfa");
}

fn database_env(url: &str) -> [(&str, &str); 1] {
    [("BFF__DATABASE__URL", url)]
}

fn user_commands_work_on(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let env = database_env(url);
    let run = |args: &[&str]| run(dir.path(), args, &env);

    assert!(run(&["migrate"]).status.success());
    let linked = run(&["users", "link", "alice", "1925"]);
    assert!(linked.status.success(), "{}", stderr(&linked));
    let shown = run(&["users", "show", "alice"]);
    assert!(shown.status.success());
    let shown: Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"subject": "alice", "autosharesUserId": 1925})
    );

    assert!(
        !run(&["users", "link", "bob", "0"]).status.success(),
        "zero"
    );
    assert!(
        !run(&["users", "link", "bob", "-4"]).status.success(),
        "negative"
    );
    assert!(
        !run(&["users", "link", "bob", "x"]).status.success(),
        "not a number"
    );

    assert!(run(&["users", "unlink", "alice"]).status.success());
    assert!(
        run(&["users", "unlink", "alice"]).status.success(),
        "unlink exits 0 either way"
    );
    assert_eq!(run(&["users", "show", "alice"]).status.code(), Some(1));

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "subject,autoshares_user_id\ncarol,1001\ndave,1002\n").unwrap();
    let imported = run(&["users", "import", good.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(run(&["users", "show", "dave"]).status.success());

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "subject,autoshares_user_id\nerin,1003\ncarol,nope\n").unwrap();
    let refused = run(&["users", "import", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused).trim(),
        "users import: line 3: autoshares_user_id must be a positive integer"
    );
    assert_eq!(
        run(&["users", "show", "erin"]).status.code(),
        Some(1),
        "nothing changed"
    );
    let carol: Value = serde_json::from_str(&stdout(&run(&["users", "show", "carol"]))).unwrap();
    assert_eq!(carol["autosharesUserId"], 1001, "nothing changed");

    let none = run(&["users", "history", "alice"]);
    assert_eq!(none.status.code(), Some(1), "no events yet");
    assert_eq!(
        stderr(&none).trim(),
        "users history: alice has no audit events"
    );
    record_events(url);
    let history = run(&["users", "history", "alice", "--limit", "1"]);
    assert!(history.status.success(), "{}", stderr(&history));
    assert_eq!(
        stdout(&history),
        "2026-12-01T10:00:02.000Z unbind ok - req-2\n",
        "newest first, as many as asked"
    );
    let history = run(&["users", "history", "alice"]);
    assert_eq!(stdout(&history).lines().count(), 2);
    assert!(
        stdout(&history).ends_with("2026-12-01T10:00:01.000Z bind ok +1310*****69 req-1\n"),
        "{}",
        stdout(&history)
    );
    assert!(
        !run(&["users", "history", "alice", "--limit", "0"])
            .status
            .success()
    );

    let twice = dir.path().join("twice.csv");
    std::fs::write(&twice, "subject,autoshares_user_id\nfrank,1\nfrank,2\n").unwrap();
    let refused = run(&["users", "import", twice.to_str().unwrap()]);
    assert_eq!(
        stderr(&refused).trim(),
        "users import: line 3: subject frank appears twice"
    );
}

/// Two audit events of `alice`, as a running service would have written them.
fn record_events(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let rows = [
            (1_796_119_201_000_i64, "bind", Some("+1310*****69"), "req-1"),
            (1_796_119_202_000_i64, "unbind", None, "req-2"),
        ];
        for (seq, (at, action, phone, request)) in rows.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO audit_events (at_ms, seq, subject, autoshares_user_id, action, \
                 outcome, phone_number, country, client_address, request_id) \
                 VALUES ($1, $2, 'alice', 1925, $3, 'ok', $4, 'US', '127.0.0.1', $5)",
            )
            .bind(at)
            .bind(seq as i64)
            .bind(action)
            .bind(phone)
            .bind(request)
            .execute(&mut connection)
            .await
            .unwrap();
        }
    });
}

#[test]
fn users_commands_manage_links_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cli.db", dir.path().display());
    user_commands_work_on(&url);
}

#[test]
fn users_commands_manage_links_on_postgres() {
    let Ok(base) = std::env::var("BFF_TEST_DATABASE_URL") else {
        eprintln!("skipped: BFF_TEST_DATABASE_URL is not set");
        return;
    };
    let name = format!("bff_test_cli_{}", std::process::id());
    let status = Command::new("psql")
        .args([
            base.as_str(),
            "-qc",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: psql cannot create a database");
        return;
    }
    let root = &base[..base.rfind('/').unwrap()];
    user_commands_work_on(&format!("{root}/{name}"));
}
