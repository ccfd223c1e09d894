//! The documentation in docs/ stands alone: every problem `code` the service can answer is
//! in the API doc (that every configuration key is in the configuration doc is a test of
//! `config`, beside the one for `config/default.toml`), and README and docs/ link only to
//! files of this repository, whose code, tests, migrations, configuration and chart cite no
//! other document.

use std::path::{Path, PathBuf};

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
            !cites_outside(&text),
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

/// Whether `text` sends its reader to a document this repository does not hold: the team's
/// folder beside it, or a numbered section of another document. (The patterns are built
/// here so that this file does not match them itself.)
fn cites_outside(text: &str) -> bool {
    let team_folder = ["..", "/shared"].concat();
    let section = [".md ", "\u{a7}"].concat();
    text.contains(&team_folder) || text.contains(&section)
}

#[test]
fn code_tests_migrations_config_and_chart_cite_only_documents_of_this_repository() {
    let mut pending = vec![
        root().join("src"),
        root().join("tests"),
        root().join("benches"),
        root().join("migrations"),
        root().join("config"),
        root().join("helm"),
    ];
    let mut read_files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "node_modules" {
                    pending.push(path);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            read_files += 1;
            assert!(
                !cites_outside(&text),
                "{} cites a document outside the repository",
                path.display()
            );
        }
    }
    assert!(read_files > 50, "read {read_files} files");
}
