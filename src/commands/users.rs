//! `autoshares-bff users link|unlink|show|import|history` (README.md "Commands"): mapping
//! management on the configured database, and a subject's audit trail (docs/operations.md "Audit trail"). Running
//! services see link changes within 5 s.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::audit::AuditStore;
use crate::cli::UsersCommand;
use crate::config::Sources;
use crate::ids::{AutosharesUserId, Subject};

use super::migrate::open_store;

pub async fn run(sources: Sources, command: UsersCommand) -> anyhow::Result<ExitCode> {
    // The file is checked before the database is touched, so a bad file changes nothing.
    let import = match &command {
        UsersCommand::Import { file } => Some(read_import(file)?),
        _ => None,
    };
    let store = open_store(&sources).await?;
    let code = match command {
        UsersCommand::Link {
            subject,
            autoshares_user_id,
        } => {
            let user = parse_user_id(&autoshares_user_id)
                .context("users link: AUTOSHARES_USER_ID must be a positive integer")?;
            check_subject(&subject).context("users link: SUBJECT must not be empty")?;
            store
                .save_link(&Subject::from(subject.as_str()), user)
                .await?;
            println!("linked {subject} -> {user}");
            ExitCode::SUCCESS
        }
        UsersCommand::Unlink { subject } => {
            let existed = store.delete_link(&Subject::from(subject.as_str())).await?;
            println!(
                "{}",
                if existed {
                    "unlinked"
                } else {
                    "was not linked"
                }
            );
            ExitCode::SUCCESS
        }
        UsersCommand::Show { subject } => {
            match store.fetch_link(&Subject::from(subject.as_str())).await? {
                Some(user) => {
                    println!(
                        "{}",
                        serde_json::json!({"subject": subject, "autosharesUserId": user.0})
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("users show: {subject} is not linked");
                    ExitCode::FAILURE
                }
            }
        }
        UsersCommand::History { subject, limit } => {
            let events = AuditStore::new(&store)
                .history(&Subject::from(subject.as_str()), limit)
                .await?;
            for event in &events {
                println!(
                    "{} {} {} {} {}",
                    event.at,
                    event.action,
                    event.outcome,
                    event.phone_number.as_deref().unwrap_or("-"),
                    event.request_id
                );
            }
            if events.is_empty() {
                eprintln!("users history: {subject} has no audit events");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        UsersCommand::Import { .. } => {
            let links = import.unwrap_or_default();
            store.import(&links).await?;
            println!("imported {} links", links.len());
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

fn parse_user_id(text: &str) -> Option<AutosharesUserId> {
    let id: i64 = text.trim().parse().ok()?;
    (id > 0).then_some(AutosharesUserId(id))
}

fn check_subject(subject: &str) -> Option<()> {
    (!subject.trim().is_empty()).then_some(())
}

/// Reads the whole CSV; the first bad line ends it with `users import: line N: <reason>`.
fn read_import(path: &Path) -> anyhow::Result<Vec<(Subject, AutosharesUserId)>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("users import: cannot open {}", path.display()))?;
    parse_import(file)
}

fn parse_import(input: impl std::io::Read) -> anyhow::Result<Vec<(Subject, AutosharesUserId)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut links = Vec::new();
    let mut seen = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(index as u64 + 1, |p| p.line());
        let record = match record {
            Ok(record) => record,
            Err(_) => bail!("users import: line {line}: not valid CSV"),
        };
        if index == 0 {
            let header: Vec<&str> = record.iter().collect();
            if header != ["subject", "autoshares_user_id"] {
                bail!("users import: line 1: the header must be subject,autoshares_user_id");
            }
            continue;
        }
        if record.len() != 2 {
            bail!(
                "users import: line {line}: expected 2 fields, found {}",
                record.len()
            );
        }
        let subject = &record[0];
        if check_subject(subject).is_none() {
            bail!("users import: line {line}: subject is empty");
        }
        let Some(user) = parse_user_id(&record[1]) else {
            bail!("users import: line {line}: autoshares_user_id must be a positive integer");
        };
        if !seen.insert(subject.to_owned()) {
            bail!("users import: line {line}: subject {subject} appears twice");
        }
        links.push((Subject::from(subject), user));
    }
    if links.is_empty() && seen.is_empty() && reader.position().line() == 1 {
        bail!("users import: line 1: the header must be subject,autoshares_user_id");
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_is_read_whole() {
        let links = parse_import("subject,autoshares_user_id\na,1\nb, 2\n".as_bytes()).unwrap();
        assert_eq!(
            links,
            vec![
                (Subject::from("a"), AutosharesUserId(1)),
                (Subject::from("b"), AutosharesUserId(2))
            ]
        );
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let cases = [
            ("subject,id\na,1\n", "line 1: the header", "wrong header"),
            ("", "line 1: the header", "empty file"),
            (
                "subject,autoshares_user_id\na,1\nb,x\n",
                "line 3: autoshares_user_id",
                "not a number",
            ),
            (
                "subject,autoshares_user_id\na,0\n",
                "line 2: autoshares_user_id",
                "zero",
            ),
            (
                "subject,autoshares_user_id\na,1\n,2\n",
                "line 3: subject is empty",
                "empty subject",
            ),
            (
                "subject,autoshares_user_id\na,1\nb\n",
                "line 3: expected 2 fields",
                "one field",
            ),
            (
                "subject,autoshares_user_id\na,1\nb,2\na,3\n",
                "line 4: subject a appears twice",
                "twice",
            ),
        ];
        for (input, expected, what) in cases {
            let message = parse_import(input.as_bytes()).unwrap_err().to_string();
            assert!(message.starts_with("users import: "), "{what}: {message}");
            assert!(message.contains(expected), "{what}: {message}");
        }
    }
}
