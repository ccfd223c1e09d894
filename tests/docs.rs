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

/// Every text file of the code, tests, benchmarks, migrations, configuration and chart.
fn project_files() -> Vec<(PathBuf, String)> {
    let mut pending = vec![
        root().join("src"),
        root().join("tests"),
        root().join("benches"),
        root().join("migrations"),
        root().join("config"),
        root().join("helm"),
    ];
    let mut files = Vec::new();
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
            if let Ok(text) = std::fs::read_to_string(&path) {
                files.push((path, text));
            }
        }
    }
    assert!(files.len() > 50, "read {} files", files.len());
    files
}

#[test]
fn code_tests_migrations_config_and_chart_cite_only_documents_of_this_repository() {
    for (path, text) in project_files() {
        assert!(
            !cites_outside(&text),
            "{} cites a document outside the repository",
            path.display()
        );
    }
}

/// Each `(document, section)` that `text` cites as `README.md "Section"` or
/// `docs/x.md "Section"`, also where a comment wraps the citation onto its next line.
fn cited_sections(text: &str) -> Vec<(String, String)> {
    let prose = text
        .lines()
        .map(|line| {
            let line = line.trim_start();
            let unmarked = ["///", "//!", "//", "#", "--"]
                .iter()
                .find_map(|marker| line.strip_prefix(marker));
            unmarked.unwrap_or(line).trim()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut cited = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find(" \"") {
        let before = rest[..at].trim_end_matches(',');
        let document = before
            .rsplit(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or_default();
        rest = &rest[at + 2..];
        let is_document = document.starts_with("README")
            || (document.starts_with("docs/") && document.ends_with(".md"));
        if let Some(end) = rest.find('"')
            && is_document
        {
            cited.push((document.to_owned(), rest[..end].to_owned()));
            rest = &rest[end + 1..];
        }
    }
    cited
}

#[test]
fn every_section_the_code_cites_is_a_heading_of_its_document() {
    let mut checked = 0;
    for (path, text) in project_files() {
        for (document, section) in cited_sections(&text) {
            let file = if document.starts_with("README") {
                "README.md"
            } else {
                &document
            };
            let found = read(file).lines().any(|line| {
                line.starts_with('#') && line.trim_start_matches('#').trim() == section
            });
            assert!(
                found,
                "{} cites {document} \"{section}\", which has no such heading",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "checked {checked} citations");
}
