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
