//! The documentation in docs/ stands alone: every problem `code` the service can answer is
//! in the API doc, every configuration key the code reads is in the configuration doc, and
//! README and docs/ link only to files of this repository.

use std::path::{Path, PathBuf};

use autoshares_bff::config::{Layers, Settings, Sources, sandbox_listen};
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_problem_code_is_in_the_api_doc() {
    let openapi: Value = serde_json::from_str(autoshares_bff::http::openapi::document()).unwrap();
    let codes = openapi["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("the OpenAPI document lists the problem codes");
    assert!(codes.len() > 20, "{codes:?}");
    let doc = read("docs/api.md");
    for code in codes {
        let code = code.as_str().unwrap();
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "docs/api.md has no row for `{code}`"
        );
    }
}

#[test]
fn every_configuration_key_is_in_the_configuration_doc() {
    let sources = Sources::default()
        .with("upstream.base_url", "http://127.0.0.1:1/api")
        .with("upstream.app_key", "k")
        .with("upstream.username", "u")
        .with("upstream.password", "p")
        .with("auth.issuer", "i")
        .with("auth.audience", "a")
        .with("auth.hs256_secret", "0123456789abcdef0123456789abcdef")
        .with(
            "verification.token_secret",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
    let layers = Layers::load(&sources).unwrap();
    Settings::read(&layers).unwrap();
    sandbox_listen(&layers).unwrap();
    let doc = read("docs/configuration.md");
    let keys: Vec<String> = layers.reads().into_iter().map(|(key, _)| key).collect();
    assert!(keys.len() > 40, "{keys:?}");
    for key in keys {
        // A row names a key, or a group of keys sharing a prefix (`abuse.conversion.*`).
        let group = key.rsplit_once('.').map(|(head, _)| format!("`{head}.*`"));
        assert!(
            doc.contains(&format!("`{key}`")) || group.is_some_and(|g| doc.contains(&g)),
            "docs/configuration.md does not name `{key}`"
        );
    }
}

/// Every relative link target in `text` (a file under `dir`).
fn local_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        links.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    links
}

#[test]
fn readme_and_docs_link_only_to_files_of_this_repository() {
    let mut files = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        files.push(path.strip_prefix(root()).unwrap().to_owned());
    }
    for file in files {
        let text = read(file.to_str().unwrap());
        assert!(
            !text.contains("CONTRACT.md") && !text.contains("../shared"),
            "{} points outside the repository",
            file.display()
        );
        let dir = file.parent().unwrap_or(Path::new(""));
        for link in local_links(&text) {
            assert!(
                !link.starts_with("http://") && !link.starts_with("https://"),
                "{}: an outside link {link}",
                file.display()
            );
            let target = link.split('#').next().unwrap();
            if target.is_empty() {
                continue;
            }
            assert!(
                root().join(dir).join(target).exists(),
                "{}: {link} is not a file of the repository",
                file.display()
            );
        }
    }
}
