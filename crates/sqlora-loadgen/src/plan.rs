//! The scenario: which (database, adapter) pairs the clients use, which questions they ask,
//! and which requests each client sends in each mode.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{LoadgenError, Result};

/// One `POST /v1/query`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReq {
    /// The database asked about.
    pub database: String,
    /// The question in plain English.
    pub question: String,
    /// The adapter to answer with; `None` for the base model.
    pub adapter: Option<String>,
}

/// A (database, adapter) pair the clients are spread over.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The database.
    pub database: String,
    /// The adapter; `None` for the base model.
    pub adapter: Option<String>,
}

/// One client's requests, sent back to back.
pub type Queue = Vec<QueryReq>;

/// Questions per database name.
pub type Questions = BTreeMap<String, Vec<String>>;

/// Pairs each adapter with a database: the one that names it as its adapter, else the one of
/// the same name, else the databases in turn. With no adapters, every database on the base.
/// `databases` holds (name, the adapter the server assigns it) and must not be empty.
pub fn targets(databases: &[(String, Option<String>)], adapters: &[String]) -> Vec<Target> {
    if adapters.is_empty() {
        return databases
            .iter()
            .map(|(d, _)| Target {
                database: d.clone(),
                adapter: None,
            })
            .collect();
    }
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let db = databases
                .iter()
                .find(|(_, own)| own.as_deref() == Some(a.as_str()))
                .or_else(|| databases.iter().find(|(d, _)| d == a))
                .unwrap_or(&databases[i % databases.len()]);
            Target {
                database: db.0.clone(),
                adapter: Some(a.clone()),
            }
        })
        .collect()
}

/// The `i`-th question of `database` (cycling); every target's database has questions.
fn nth_question(questions: &Questions, database: &str, i: usize) -> String {
    let qs = &questions[database];
    qs[i % qs.len()].clone()
}

/// The requests of the prefix mode for one target: `1 + repeats` questions of its database.
pub fn prefix_plan(target: &Target, questions: &Questions, repeats: usize) -> Queue {
    (0..=repeats)
        .map(|i| QueryReq {
            database: target.database.clone(),
            question: nth_question(questions, &target.database, i),
            adapter: target.adapter.clone(),
        })
        .collect()
}

/// The timed requests of the mixed mode, one queue per client: client `c` asks target
/// `c mod T`, questions of its database in turn; request `j` goes to client `j mod N`.
pub fn mixed_plan(
    targets: &[Target],
    questions: &Questions,
    clients: usize,
    requests: usize,
) -> Vec<Queue> {
    let mut queues = vec![Vec::new(); clients];
    let mut next_q: BTreeMap<&str, usize> = BTreeMap::new();
    for j in 0..requests {
        let c = j % clients;
        let t = &targets[c % targets.len()];
        let k = next_q.entry(t.database.as_str()).or_insert(0);
        let question = nth_question(questions, &t.database, *k);
        *k += 1;
        queues[c].push(QueryReq {
            database: t.database.clone(),
            question,
            adapter: t.adapter.clone(),
        });
    }
    queues
}

/// The same queues on one target: with adapters, every request keeps its database and
/// question but uses the first adapter; without, every client asks the first database.
pub fn single_plan(mixed: &[Queue], first: &Target, questions: &Questions) -> Vec<Queue> {
    let mut k = 0usize;
    mixed
        .iter()
        .map(|q| {
            q.iter()
                .map(|r| {
                    if first.adapter.is_some() {
                        QueryReq {
                            adapter: first.adapter.clone(),
                            ..r.clone()
                        }
                    } else {
                        k += 1;
                        QueryReq {
                            database: first.database.clone(),
                            question: nth_question(questions, &first.database, k - 1),
                            adapter: None,
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// The mixed mode's requests in the order they were issued, for one client.
pub fn serial_plan(mixed: &[Queue]) -> Vec<Queue> {
    let longest = mixed.iter().map(Vec::len).max().unwrap_or(0);
    let mut all = Vec::new();
    for i in 0..longest {
        for q in mixed {
            if let Some(r) = q.get(i) {
                all.push(r.clone());
            }
        }
    }
    vec![all]
}

/// Adds the questions of JSONL `text` (`question` and `db_id` or `database`, else
/// `default_db`) for the `wanted` databases; lines that are not JSON objects are skipped.
fn parse_jsonl(text: &str, wanted: &BTreeSet<String>, default_db: &str, out: &mut Questions) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let db = v
            .get("db_id")
            .or_else(|| v.get("database"))
            .and_then(Value::as_str)
            .unwrap_or(default_db);
        if let Some(q) = v.get("question").and_then(Value::as_str) {
            if wanted.contains(db) && !q.trim().is_empty() {
                out.entry(db.to_string()).or_default().push(q.to_string());
            }
        }
    }
}

/// Questions made from the table names `GET /v1/databases` lists for `db`.
fn made_questions(dbs: &[Value], db: &str) -> Vec<String> {
    let tables: Vec<String> = dbs
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(db))
        .and_then(|d| d.get("tables"))
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    tables
        .iter()
        .flat_map(|t| {
            [
                format!("How many rows are in the {t} table?"),
                format!("List the first five rows of {t}."),
            ]
        })
        .collect()
}

/// Questions per database: from `questions_file` (JSONL), else
/// `<datasets_dir>/<db>/test.jsonl` (then dev, then train), else made from the table names
/// in `dbs` (the `data` of `GET /v1/databases`). An error when a wanted database ends up
/// with none.
pub fn load_questions(
    questions_file: Option<&Path>,
    datasets_dir: &Path,
    dbs: &[Value],
    wanted: &BTreeSet<String>,
) -> Result<Questions> {
    let mut out = Questions::new();
    if let Some(path) = questions_file {
        let text = std::fs::read_to_string(path).map_err(|source| LoadgenError::Questions {
            path: path.to_path_buf(),
            source,
        })?;
        parse_jsonl(&text, wanted, "", &mut out);
    } else {
        for db in wanted {
            for split in ["test", "dev", "train"] {
                let file = datasets_dir.join(db).join(format!("{split}.jsonl"));
                if let Ok(text) = std::fs::read_to_string(&file) {
                    parse_jsonl(&text, wanted, db, &mut out);
                    if out.contains_key(db) {
                        break;
                    }
                }
            }
        }
    }
    for db in wanted {
        if out.get(db).is_some_and(|q| !q.is_empty()) {
            continue;
        }
        let made = made_questions(dbs, db);
        if made.is_empty() {
            return Err(LoadgenError::NoQuestions(db.clone()));
        }
        out.insert(db.clone(), made);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_spread_clients_over_adapters_and_keep_the_requests() {
        let dbs = vec![
            ("retail".to_string(), Some("retail".to_string())),
            ("hr".to_string(), None),
        ];
        let t = targets(&dbs, &["retail".into(), "general".into()]);
        assert_eq!(t[0].database, "retail");
        assert_eq!(t[1].database, "hr"); // no owner, no namesake: the databases in turn
        let mut qs = BTreeMap::new();
        qs.insert(
            "retail".to_string(),
            vec!["r1".to_string(), "r2".to_string()],
        );
        qs.insert("hr".to_string(), vec!["h1".to_string()]);
        let mixed = mixed_plan(&t, &qs, 4, 10);
        assert_eq!(mixed.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2, 2]);
        for (c, q) in mixed.iter().enumerate() {
            for r in q {
                assert_eq!(r.adapter.as_deref(), t[c % 2].adapter.as_deref());
            }
        }
        assert_eq!(mixed[0][0].question, "r1");
        assert_eq!(mixed[2][0].question, "r2");
        let single = single_plan(&mixed, &t[0], &qs);
        assert!(single
            .iter()
            .flatten()
            .all(|r| r.adapter.as_deref() == Some("retail")));
        let serial = serial_plan(&mixed);
        assert_eq!(serial.len(), 1);
        assert_eq!(serial[0].len(), 10);
        assert_eq!(serial[0][1], mixed[1][0]);
        // Without adapters, clients spread over the databases on the base model.
        let base = targets(&dbs, &[]);
        assert!(base.iter().all(|t| t.adapter.is_none()));
        assert_eq!(base.len(), 2);
        let single = single_plan(&mixed, &base[1], &qs);
        assert!(single.iter().flatten().all(|r| r.database == "hr"));
        let prefix = prefix_plan(&t[0], &qs, 2);
        let asked: Vec<&str> = prefix.iter().map(|r| r.question.as_str()).collect();
        assert_eq!(asked, ["r1", "r2", "r1"]);
    }

    #[test]
    fn questions_come_from_a_file_the_datasets_or_the_table_names() {
        let dir = tempfile::tempdir().unwrap();
        let wanted: BTreeSet<String> = ["retail".to_string(), "hr".to_string()].into();
        let file = dir.path().join("q.jsonl");
        std::fs::write(
            &file,
            "{\"db_id\":\"retail\",\"question\":\"How many?\"}\nnot json\n\
             {\"database\":\"other\",\"question\":\"x\"}\n",
        )
        .unwrap();
        let dbs = vec![json!({"name": "hr", "tables": [{"name": "staff"}]})];
        let qs = load_questions(Some(&file), dir.path(), &dbs, &wanted).unwrap();
        assert_eq!(qs["retail"], ["How many?"]);
        assert_eq!(
            qs["hr"],
            [
                "How many rows are in the staff table?",
                "List the first five rows of staff."
            ]
        );
        assert!(!qs.contains_key("other"));
        // The bundled splits: test first, rows without db_id belong to the folder's database.
        std::fs::create_dir_all(dir.path().join("retail")).unwrap();
        std::fs::write(
            dir.path().join("retail/dev.jsonl"),
            "{\"question\":\"From dev\"}\n",
        )
        .unwrap();
        let qs = load_questions(None, dir.path(), &dbs, &wanted).unwrap();
        assert_eq!(qs["retail"], ["From dev"]);
        // Nothing to ask: a clear error, not a panic later.
        let err = load_questions(None, &dir.path().join("none"), &[], &wanted).unwrap_err();
        assert!(
            err.to_string().contains("no questions for database 'hr'"),
            "{err}"
        );
        let err = load_questions(
            Some(&dir.path().join("missing.jsonl")),
            dir.path(),
            &[],
            &wanted,
        )
        .unwrap_err();
        assert!(matches!(err, LoadgenError::Questions { .. }));
    }
}
