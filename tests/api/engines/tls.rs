//! Redis over TLS with a private CA (`redis.ca_file`), with and without a client
//! certificate, and an ACL user: binds work; a wrong CA or password makes `/readyz` 503
//! with the reason in the log, and no secret is ever logged.

use super::servers::{Certificates, RedisProcess, installed};
use super::{Service, autoshares};

const PASSWORD: &str = "acl-password-7f3e9b1c";

/// A TLS server whose ACL user `bff` has `PASSWORD`; `clients` asks for a certificate.
fn server(certificates: &Certificates, clients: bool) -> RedisProcess {
    RedisProcess::start_tls(
        certificates,
        clients,
        &[
            "--user",
            "bff",
            "on",
            &format!(">{PASSWORD}"),
            "~*",
            "&*",
            "+@all",
            "--user",
            "default",
            "off",
        ]
        .map(str::to_owned),
    )
}

fn settings(
    server: &RedisProcess,
    certificates: &Certificates,
    password: &str,
    ca: &str,
    client_cert: bool,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "BFF__REDIS__URL",
            format!("rediss://bff:{password}@localhost:{}", server.port),
        ),
        (
            "BFF__REDIS__CA_FILE",
            certificates.path(ca).display().to_string(),
        ),
        ("BFF__REDIS__KEY_PREFIX", "t1:".to_owned()),
    ];
    if client_cert {
        env.push((
            "BFF__REDIS__CLIENT_CERT_FILE",
            certificates.path("client.pem").display().to_string(),
        ));
        env.push((
            "BFF__REDIS__CLIENT_KEY_FILE",
            certificates.path("client.key").display().to_string(),
        ));
    }
    env
}

#[actix_web::test]
async fn binds_work_over_tls_with_a_private_ca_with_and_without_a_client_certificate() {
    if !installed(&["redis-server", "redis-cli"]) {
        return;
    }
    let certificates = Certificates::make();
    let fake = autoshares();
    for clients in [false, true] {
        let server = server(&certificates, clients);
        let dir = tempfile::tempdir().unwrap();
        let service = Service::start(
            &fake,
            dir.path(),
            &settings(&server, &certificates, PASSWORD, "ca.pem", clients),
        )
        .await;
        let answer = service.bind("sub-1", 7, "+13108904569", None).await;
        assert_eq!(
            answer.status, 200,
            "client certificate asked: {clients}: {}",
            answer.body
        );
        assert_eq!(service.ready().await.0, 200);
        service.process.terminate();
        let finished = service.process.finish();
        assert!(!finished.stdout.contains(PASSWORD) && !finished.stderr.contains(PASSWORD));
    }
}

#[actix_web::test]
async fn a_wrong_ca_password_or_missing_client_certificate_is_unready_with_the_reason_logged() {
    if !installed(&["redis-server", "redis-cli"]) {
        return;
    }
    let certificates = Certificates::make();
    let fake = autoshares();
    let cases = [
        ("another CA", false, PASSWORD, "other-ca.pem", false),
        (
            "a wrong password",
            false,
            "wrong-password-31c4",
            "ca.pem",
            false,
        ),
        ("no client certificate", true, PASSWORD, "ca.pem", false),
    ];
    for (what, clients, password, ca, client_cert) in cases {
        let server = server(&certificates, clients);
        let dir = tempfile::tempdir().unwrap();
        let service = Service::launch(
            &fake,
            dir.path(),
            &settings(&server, &certificates, password, ca, client_cert),
        );
        assert_eq!(service.first_readiness().await, 503, "{what}");
        let bind = service.bind("sub-1", 7, "+13108904569", None).await;
        assert_eq!(
            (bind.status, bind.body["code"].as_str()),
            (503, Some("rate_limiter_unavailable")),
            "{what}"
        );
        let process = service.process;
        process.terminate();
        let finished = process.finish();
        let log = format!("{}{}", finished.stdout, finished.stderr);
        let down: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("readiness: redis is down"))
            .collect();
        assert_eq!(
            down.len(),
            1,
            "{what}: logged once, with its reason:\n{log}"
        );
        assert!(down[0].contains("\"reason\""), "{what}: {}", down[0]);
        assert!(
            !log.contains(password) && !log.contains(PASSWORD),
            "{what}: a secret in the log"
        );
    }
}
