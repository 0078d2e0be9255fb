//! Spider import on the committed sample (tests/fixtures/spider_sample,
//! made by its make_sample.py): round trip through schema.sql + data.sql.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use sqlora_data::{build_domain, content_checksum, import_spider, read_jsonl, DataError, Domain};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/spider_sample")
}

fn rows(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn sample_round_trips_through_the_project_layout() {
    let s = sample();
    let out = tempfile::tempdir().unwrap();
    let summary = import_spider(
        &s.join("tables.json"),
        &s.join("dev.json"),
        &s.join("database"),
        out.path(),
    )
    .unwrap();
    assert_eq!(summary.skipped, Vec::<(String, String)>::new());
    assert_eq!(summary.databases, 2);
    assert_eq!(summary.examples, 11);
    assert_eq!(summary.out_dir, out.path());

    let fixtures = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for db_id in ["bookshop", "pet_clinic"] {
        let domain = Domain::open(&out.path().join(db_id)).unwrap();
        let schema = domain.schema_sql().unwrap();
        assert!(schema.starts_with("CREATE TABLE"), "{schema}");
        let examples = read_jsonl(&domain.dir.join("dev.jsonl")).unwrap();
        for (n, ex) in examples.iter().enumerate() {
            assert_eq!(ex.id, format!("{db_id}_dev_{n}"));
            assert_eq!(ex.db_id, db_id);
        }
        let original = s
            .join("database")
            .join(db_id)
            .join(format!("{db_id}.sqlite"));
        let built = build_domain(&domain, fixtures.path(), 1).unwrap();
        // same logical content: schema objects and every row
        assert_eq!(
            built[0].checksum,
            content_checksum(&original).unwrap(),
            "{db_id}"
        );
        for ex in &examples {
            let want = rows(&original, &ex.sql);
            assert_eq!(rows(&built[0].path, &ex.sql), want, "{}: {}", ex.id, ex.sql);
            checked += 1;
        }
        // import is deterministic
        let again = tempfile::tempdir().unwrap();
        import_spider(
            &s.join("tables.json"),
            &s.join("dev.json"),
            &s.join("database"),
            again.path(),
        )
        .unwrap();
        for f in ["schema.sql", "data.sql", "dev.jsonl"] {
            assert_eq!(
                std::fs::read(domain.dir.join(f)).unwrap(),
                std::fs::read(again.path().join(db_id).join(f)).unwrap()
            );
        }
    }
    assert_eq!(checked, 11);
    // quoting survives: the apostrophe and the column name with a space
    let data = std::fs::read_to_string(out.path().join("pet_clinic/data.sql")).unwrap();
    assert!(data.contains("'Tom O''Hara'"));
    assert!(data.contains("0.35"));
}

#[test]
fn missing_databases_and_bird_format() {
    let s = sample();
    let tmp = tempfile::tempdir().unwrap();
    // tables.json with a database whose sqlite file is absent
    let mut tables: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("tables.json")).unwrap()).unwrap();
    let mut ghost = tables[0].clone();
    ghost["db_id"] = "ghost".into();
    tables.as_array_mut().unwrap().push(ghost);
    let tables_path = tmp.path().join("tables.json");
    std::fs::write(&tables_path, tables.to_string()).unwrap();
    let examples = serde_json::json!([
        {"db_id": "bookshop", "question": "How many books?", "SQL": "SELECT count(*) FROM book"},
        {"db_id": "ghost", "question": "Anything?", "SQL": "SELECT 1"},
        {"db_id": "unlisted", "question": "Anything?", "SQL": "SELECT 1"},
        {"db_id": "bookshop", "question": "", "SQL": "SELECT 1"},
        {"question": "no db", "SQL": "SELECT 1"},
        {"db_id": "../escape", "question": "x", "SQL": "SELECT 1"}
    ]);
    let ex_path = tmp.path().join("train_bird.json");
    std::fs::write(&ex_path, examples.to_string()).unwrap();
    let out = tmp.path().join("out");
    let summary = import_spider(&tables_path, &ex_path, &s.join("database"), &out).unwrap();
    assert_eq!(summary.databases, 1);
    assert_eq!(summary.examples, 1);
    let skipped: Vec<&str> = summary.skipped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "#4",
            "#5",
            "bookshop_train_bird_1",
            "ghost_train_bird_0",
            "unlisted_train_bird_0"
        ]
    );
    let why = &summary.skipped[3].1;
    assert!(
        why.contains("missing") && why.contains("ghost.sqlite"),
        "{why}"
    );
    assert!(summary.skipped[4].1.contains("not in tables.json"));
    let written = read_jsonl(&out.join("bookshop/train_bird.jsonl")).unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].sql, "SELECT count(*) FROM book");
    assert!(!out.join("ghost").exists());
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn malformed_input_is_a_clear_error() {
    let s = sample();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("dev.json");
    std::fs::write(&bad, "[{\"db_id\": ").unwrap();
    let err = import_spider(
        &s.join("tables.json"),
        &bad,
        &s.join("database"),
        tmp.path(),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Json { .. }), "{err}");
    assert!(err.to_string().contains("dev.json"));
    let err = import_spider(
        &tmp.path().join("nope.json"),
        &bad,
        &s.join("database"),
        tmp.path(),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Missing(_)), "{err}");
}

/// The quirk fixture (tests/fixtures/quirks/quirks.sql) as a Spider folder: `tables.json` lists
/// `sqlite_sequence`, `customers` (the file says `Customers`), `ORDER ITEMS`, a view, and a
/// table the file lacks; `dev.json` has examples over every quirk, one over the missing table
/// and one that writes.
fn quirk_spider(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let db_dir = dir.join("database");
    std::fs::create_dir_all(db_dir.join("quirks")).unwrap();
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quirks/quirks.sql"),
    )
    .unwrap();
    Connection::open(db_dir.join("quirks/quirks.sqlite"))
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    let tables = serde_json::json!([{
        "db_id": "quirks",
        "table_names_original": ["customers", "sqlite_sequence", "Orders", "ORDER ITEMS",
                                 "event_log", "Big Orders", "wide_readings", "ghost_table"],
    }]);
    let examples = serde_json::json!([
        {"db_id": "quirks", "question": "What are the customers' first names?",
         "query": "SELECT \"first name\" FROM customers"},
        {"db_id": "quirks", "question": "Wer wohnt in München?",
         "query": "SELECT \"Last\"\"Name\" FROM Customers WHERE \"Città\" = 'München'"},
        {"db_id": "quirks", "question": "How many big orders are there?",
         "query": "SELECT count(*) FROM \"Big Orders\""},
        {"db_id": "quirks", "question": "How many of each sku were ordered?",
         "query": "SELECT sku, sum(qty) FROM \"Order Items\" GROUP BY sku"},
        {"db_id": "quirks", "question": "Which messages are warnings?",
         "query": "SELECT DISTINCT message FROM event_log WHERE level > 2"},
        {"db_id": "quirks", "question": "What is in the ghost table?",
         "query": "SELECT * FROM ghost_table"},
        {"db_id": "quirks", "question": "Forget the log.",
         "query": "DELETE FROM event_log"},
        {"db_id": "quirks", "question": "What is the average humidity per station?",
         "query": "SELECT station_name, avg(humidity) FROM wide_readings GROUP BY station_name"},
        {"db_id": "quirks", "question": "東京の顧客は誰ですか?",
         "query": "SELECT T1.\"first name\" FROM Customers AS T1 JOIN Orders AS T2 ON T1.CustomerID = T2.CustomerID WHERE T1.\"Città\" = '東京'"},
        {"db_id": "quirks", "question": "Which column is missing?",
         "query": "SELECT no_such_column FROM Orders"}
    ]);
    let tables_path = dir.join("tables.json");
    let ex_path = dir.join("dev.json");
    std::fs::write(&tables_path, tables.to_string()).unwrap();
    std::fs::write(&ex_path, examples.to_string()).unwrap();
    (tables_path, ex_path, db_dir)
}

#[test]
fn real_world_quirks_are_imported_with_per_example_skips_and_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let (tables, examples, db_dir) = quirk_spider(tmp.path());
    let out = tmp.path().join("out");
    let summary = import_spider(&tables, &examples, &db_dir, &out).unwrap();
    // The database is kept; only the examples that cannot run are skipped, each with its reason.
    assert_eq!(summary.databases, 1);
    assert_eq!(summary.examples, 7, "{:?}", summary.skipped);
    let skipped: Vec<(&str, &str)> = summary
        .skipped
        .iter()
        .map(|(id, why)| (id.as_str(), why.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].0, "quirks_dev_5");
    assert!(
        skipped[0].1.contains("no such table: ghost_table"),
        "{skipped:?}"
    );
    assert_eq!(skipped[1].0, "quirks_dev_6");
    assert!(skipped[1].1.contains("not read-only"), "{skipped:?}");
    assert_eq!(skipped[2].0, "quirks_dev_9");
    assert!(skipped[2].1.contains("no_such_column"), "{skipped:?}");
    // tables.json's odd entries are noted, not fatal: only the table the file lacks (not
    // sqlite_sequence, not the case-mismatched names).
    assert_eq!(summary.notes.len(), 1, "{:?}", summary.notes);
    assert_eq!(summary.notes[0].0, "quirks");
    assert!(
        summary.notes[0].1.contains("ghost_table"),
        "{:?}",
        summary.notes
    );

    // The output rebuilds a database on which every kept gold query gives the original rows.
    let domain = Domain::open(&out.join("quirks")).unwrap();
    let schema = domain.schema_sql().unwrap();
    assert!(schema.contains("WITHOUT ROWID"), "{schema}");
    assert!(schema.contains("CREATE VIEW \"Big Orders\""), "{schema}");
    assert!(!schema.contains("sqlite_sequence"), "{schema}");
    let data = std::fs::read_to_string(out.join("quirks/data.sql")).unwrap();
    assert!(data.contains("'東京'") && data.contains("'Smith \"Bobby\"'"));
    let kept = read_jsonl(&domain.dir.join("dev.jsonl")).unwrap();
    assert_eq!(kept.len(), 7);
    let fixtures = tempfile::tempdir().unwrap();
    let built = build_domain(&domain, fixtures.path(), 1).unwrap();
    let original = db_dir.join("quirks/quirks.sqlite");
    for ex in &kept {
        let want = rows(&original, &ex.sql);
        assert!(!want.is_empty(), "{}", ex.sql);
        assert_eq!(rows(&built[0].path, &ex.sql), want, "{}: {}", ex.id, ex.sql);
    }
    // The non-ASCII question survives as it is.
    assert!(kept.iter().any(|e| e.question == "東京の顧客は誰ですか?"));
}
