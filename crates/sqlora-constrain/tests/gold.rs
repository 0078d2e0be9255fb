//! Every gold query of the bundled datasets is a complete statement over its domain's schema:
//! the grammar is wide enough for what the model is trained to write.

mod common;

use common::*;
use sqlora_constrain::Options;

#[test]
fn every_gold_query_is_accepted() {
    let mut total = 0;
    let mut strict_refused = Vec::new();
    let mut failures = Vec::new();
    for domain in domains() {
        let index = domain_index(&domain);
        for split in ["train", "dev", "test"] {
            let path = datasets_dir().join(&domain).join(format!("{split}.jsonl"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let sql = v["sql"].as_str().unwrap();
                total += 1;
                let forward = Options {
                    forward_names: true,
                    ..Default::default()
                };
                if !complete_with(&index, sql, forward) {
                    let at = dies_at(&index, sql);
                    failures.push(format!("{domain}/{split}: dies at {at:?}: {sql}"));
                } else if !complete(&index, sql) {
                    strict_refused.push(sql.to_string());
                }
            }
        }
    }
    eprintln!(
        "{total} gold queries; {} need forward names in the select list",
        strict_refused.len()
    );
    assert!(total > 3000, "only {total} gold queries found");
    assert!(
        failures.is_empty(),
        "{} of {total} gold queries refused:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
    // Only select lists that name a FROM subquery's output columns need `forward_names`.
    for sql in &strict_refused {
        assert!(
            sql.contains("FROM ("),
            "refused without forward names: {sql}"
        );
    }
}
