//! The bundled datasets (datasets/<domain>/) obey the dataset rules: builds
//! every fixture into a temporary directory and runs the linter over them.
//! Fails with the full list of violations.
//!
//! The hand-written question files (`human.jsonl` for evaluation,
//! `human_dev.jsonl` for development; see datasets/HUMAN.md) are checked by
//! the same linter, each put in the test slot of a scratch domain: alone
//! (every gold query passes the guard, returns rows and carries its Spider
//! hardness label), against train + dev, and against test + the other
//! hand-written files (no question or normalised query in common). The
//! hand-written training examples (`human_train.jsonl`) are held to the same
//! rules, so nothing retrieved or trained on repeats an evaluation question.

use std::collections::HashSet;
use std::path::Path;

use sqlora_data::fixtures::db_path;
use sqlora_data::{
    build_all, check_all, check_domain_with, list_domains, read_jsonl, Domain, Thresholds,
};

#[test]
fn bundled_datasets_pass_the_dataset_checks() {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let out = tempfile::tempdir().unwrap();
    let built = build_all(&datasets, out.path(), 1).unwrap();
    assert!(!built.is_empty());
    let report = check_all(&datasets, out.path(), 6, false).unwrap();
    // Always show the numbers (fraction of gold queries returning rows, …).
    eprintln!("{}", report.render());
    assert!(report.is_ok(), "dataset check failed:\n{}", report.render());
}

/// The hand-written files of every bundled domain: (file stem, id infix,
/// fewest and most questions). `human_train` is the hand-written part of the
/// retrieval pool and training data (100 written per domain in two rounds,
/// less the ones dropped as near-duplicates of held-out questions); the other
/// two are held out.
const HAND_WRITTEN: [(&str, &str, usize, usize); 3] = [
    ("human", "human", 25, 25),
    ("human_dev", "humandev", 30, 30),
    ("human_train", "humantrain", 85, 100),
];

/// A question or query made comparable: lower-case, single spaces.
fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[test]
fn hand_written_questions_pass_the_dataset_checks_without_leaking() {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let out = tempfile::tempdir().unwrap();
    build_all(&datasets, out.path(), 1).unwrap();
    // No size or novelty quota on a small file; alone, every gold query must
    // return rows (the generated splits beside it may hold a few empty ones).
    let leakage = Thresholds {
        min_split: [0, 0, 0],
        min_non_empty: 0.0,
        min_novel_skeletons: 0.0,
        ..Thresholds::default()
    };
    let alone = Thresholds {
        min_non_empty: 1.0,
        ..leakage.clone()
    };
    let domains = list_domains(&datasets).unwrap();
    assert!(domains.len() >= 6, "{} domains", domains.len());
    let mut failures = Vec::new();
    for domain in &domains {
        for (file, infix, fewest, most) in HAND_WRITTEN {
            let path = domain.dir.join(format!("{file}.jsonl"));
            let examples = read_jsonl(&path).unwrap();
            if !(fewest..=most).contains(&examples.len()) {
                failures.push(format!(
                    "{}: {} questions, expected {fewest} to {most}",
                    path.display(),
                    examples.len()
                ));
            }
            let prefix = format!("{}_{infix}_", domain.name);
            let (mut questions, mut queries) = (HashSet::new(), HashSet::new());
            for ex in &examples {
                if !ex.id.starts_with(&prefix) {
                    failures.push(format!("{}: id {} lacks {prefix}", path.display(), ex.id));
                }
                if !questions.insert(norm(&ex.question)) {
                    failures.push(format!("{}: {} repeats a question", path.display(), ex.id));
                }
                if !queries.insert(norm(&ex.sql)) {
                    failures.push(format!("{}: {} repeats a query", path.display(), ex.id));
                }
            }
            // An empty name stands for an empty split; `others` for the other
            // hand-written files together.
            for (train, dev, limits) in [
                ("", "", &alone),
                ("train", "dev", &leakage),
                ("test", "others", &leakage),
            ] {
                let scratch = tempfile::tempdir().unwrap();
                let slot = Domain {
                    name: domain.name.clone(),
                    dir: scratch.path().join(&domain.name),
                };
                std::fs::create_dir_all(&slot.dir).unwrap();
                for (from, to) in [(train, "train"), (dev, "dev"), (file, "test")] {
                    let to = slot.dir.join(format!("{to}.jsonl"));
                    if from.is_empty() {
                        std::fs::write(to, "").unwrap();
                    } else if from == "others" {
                        let text: String = HAND_WRITTEN
                            .iter()
                            .filter(|(other, ..)| *other != file)
                            .map(|(other, ..)| {
                                std::fs::read_to_string(domain.dir.join(format!("{other}.jsonl")))
                                    .unwrap()
                            })
                            .collect();
                        std::fs::write(to, text).unwrap();
                    } else {
                        std::fs::copy(domain.dir.join(format!("{from}.jsonl")), to).unwrap();
                    }
                }
                let db = db_path(out.path(), &domain.name, 0);
                let report = check_domain_with(&slot, &db, false, limits).unwrap();
                let against = if train.is_empty() {
                    "alone".to_string()
                } else {
                    format!("against {train} + {dev}")
                };
                failures.extend(
                    report
                        .issues
                        .iter()
                        .map(|i| format!("{file}.jsonl {against}: {i}")),
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
