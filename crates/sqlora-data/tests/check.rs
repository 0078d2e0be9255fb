//! The dataset linter on a small domain written here, with one violation of
//! each kind, and the difficulty fixer.

use std::path::Path;

use sqlora_data::{
    build_domain, check_domain, check_domain_with, read_jsonl, write_jsonl, Difficulty, Domain,
    Example, Thresholds,
};

fn ex(id: &str, db: &str, q: &str, sql: &str, d: Difficulty) -> Example {
    Example {
        id: id.into(),
        db_id: db.into(),
        question: q.into(),
        sql: sql.into(),
        difficulty: d,
    }
}

fn small_domain(root: &Path) -> Domain {
    let dir = root.join("zoo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("schema.sql"),
        "CREATE TABLE keeper (id INTEGER PRIMARY KEY, name TEXT);\n\
         CREATE TABLE animal (id INTEGER PRIMARY KEY, name TEXT, species TEXT, keeper_id INTEGER REFERENCES keeper(id), weight REAL);\n\
         CREATE TABLE log (animal_id INTEGER REFERENCES animal(id), note TEXT);\n",
    )
    .unwrap();
    let mut data = String::new();
    for i in 1..=5 {
        data.push_str(&format!("INSERT INTO keeper VALUES ({i}, 'Keeper {i}');\n"));
    }
    for i in 1..=120 {
        data.push_str(&format!(
            "INSERT INTO animal VALUES ({i}, 'Animal {i}', '{}', {}, {}.5);\n",
            ["lion", "zebra", "otter"][i % 3],
            i % 5 + 1,
            i * 3
        ));
    }
    std::fs::write(dir.join("data.sql"), data).unwrap();
    use Difficulty::*;
    let train = vec![
        ex(
            "t1",
            "zoo",
            "How many animals?",
            "SELECT count(*) FROM animal",
            Easy,
        ),
        ex(
            "t2",
            "zoo",
            "Name the lions.",
            "SELECT name FROM animal WHERE species = 'lion'",
            Easy,
        ),
        ex("t2", "zoo", "Duplicate id", "SELECT name FROM keeper", Easy),
        ex("t4", "farm", "Wrong db", "SELECT name FROM keeper", Easy),
    ];
    let dev = vec![
        ex(
            "d1",
            "zoo",
            "Heavy animals?",
            "SELECT name FROM animal WHERE weight > 100",
            Hard,
        ),
        ex("d2", "zoo", "Bad column", "SELECT colour FROM animal", Easy),
        ex("d3", "zoo", "Writes", "DELETE FROM animal", Easy),
        ex(
            "d4",
            "zoo",
            "Tigers?",
            "SELECT name FROM animal WHERE species = 'tiger'",
            Easy,
        ),
    ];
    let test = vec![
        ex("x1", "zoo", "how many animals", "SELECT count(*) FROM animal", Easy),
        ex("x2", "zoo", "Keepers of otters?", "SELECT DISTINCT k.name FROM keeper AS k JOIN animal AS a ON a.keeper_id = k.id WHERE a.species = 'otter'", Medium),
    ];
    write_jsonl(&dir.join("train.jsonl"), &train).unwrap();
    write_jsonl(&dir.join("dev.jsonl"), &dev).unwrap();
    write_jsonl(&dir.join("test.jsonl"), &test).unwrap();
    Domain::open(&dir).unwrap()
}

#[test]
fn every_kind_of_violation_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    let built = build_domain(&domain, &root.path().join("out"), 1).unwrap();
    let report = check_domain(&domain, &built[0].path, false).unwrap();
    let text = report.render();
    let has = |kind: &str, id: Option<&str>| {
        report
            .issues
            .iter()
            .any(|i| i.kind == kind && i.id.as_deref() == id && i.domain == "zoo")
    };
    assert!(has("schema", None), "{text}"); // 3 tables, 2 FKs, log has no PK
    assert!(text.contains("table log has no primary key"), "{text}");
    assert!(has("data", None), "{text}"); // only one table with 100+ rows
    assert!(has("split-size", None), "{text}");
    assert!(has("duplicate-id", Some("t2")), "{text}");
    assert!(has("db-id", Some("t4")), "{text}");
    assert!(has("guard", Some("d2")), "{text}");
    assert!(has("guard", Some("d3")), "{text}");
    assert!(has("difficulty", Some("d1")), "{text}");
    assert!(has("leak-question", Some("x1")), "{text}");
    assert!(has("leak-sql", Some("x1")), "{text}");
    assert!(!has("leak-sql", Some("x2")), "{text}");
    assert!(!has("guard", Some("t1")), "{text}");
    let s = &report.stats["zoo"];
    assert_eq!(s.tables, 3);
    assert_eq!(s.foreign_keys, 2);
    assert_eq!(s.max_rows, 120);
    // d4 returns nothing; d2/d3 never ran
    assert_eq!(s.gold_queries, 8);
    assert_eq!(s.non_empty, 7);
    assert_eq!(s.novel_test_skeletons, 1);
    assert!((s.novel_skeleton_fraction - 0.5).abs() < 1e-9);
    assert!(text.contains("non-empty 7/8"), "{text}");

    // Relaxed limits: the structural issues disappear, the example ones stay.
    let lax = Thresholds {
        min_tables: 3,
        min_foreign_keys: 2,
        min_big_tables: 1,
        min_split: [1, 1, 1],
        min_non_empty: 0.95,
        ..Thresholds::default()
    };
    let report = check_domain_with(&domain, &built[0].path, false, &lax).unwrap();
    assert!(!report
        .issues
        .iter()
        .any(|i| i.kind == "split-size" || i.kind == "data"));
    assert!(report
        .issues
        .iter()
        .any(|i| i.kind == "empty-results" && i.message.contains("d4")));
}

#[test]
fn fix_difficulty_rewrites_labels_in_place() {
    let root = tempfile::tempdir().unwrap();
    let domain = small_domain(root.path());
    let built = build_domain(&domain, &root.path().join("out"), 1).unwrap();
    let before_train = read_jsonl(&domain.dir.join("train.jsonl")).unwrap();
    let report = check_domain(&domain, &built[0].path, true).unwrap();
    assert!(!report.issues.iter().any(|i| i.kind == "difficulty"));
    assert!(report.stats["zoo"].difficulty_fixed >= 1);
    let dev = read_jsonl(&domain.dir.join("dev.jsonl")).unwrap();
    let d1 = dev.iter().find(|e| e.id == "d1").unwrap();
    assert_eq!(
        d1.difficulty,
        sqlora_eval::hardness::hardness(&d1.sql).unwrap()
    );
    assert_ne!(d1.difficulty, Difficulty::Hard);
    // everything else is kept as it was
    assert_eq!(dev.len(), 4);
    assert_eq!(dev[1].sql, "SELECT colour FROM animal");
    let after_train = read_jsonl(&domain.dir.join("train.jsonl")).unwrap();
    assert_eq!(after_train.len(), before_train.len());
    // a second check finds nothing to fix
    let again = check_domain(&domain, &built[0].path, false).unwrap();
    assert!(
        !again.issues.iter().any(|i| i.kind == "difficulty"),
        "{}",
        again.render()
    );
}
