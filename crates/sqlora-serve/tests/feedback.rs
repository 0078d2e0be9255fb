//! The feedback loop over a real server on a loopback port (the scripted tiny model, which
//! answers every question with `SELECT COUNT ( * ) FROM customers`): every answer carries a
//! `query_id` stored in the feedback file; verdicts and corrections are stored, a correction
//! only after the guard accepted it and it ran; every bad input gets its 4xx; `/v1/sql` runs a
//! user's SQL through the same guard; without a store there is no `query_id`. A writer killed
//! with SIGKILL right after its acknowledged write leaves the row in the file.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::json;
use sqlora_serve::feedback::{FeedbackStore, GoldSource, Verdict};
use sqlora_serve::{App, DatabaseSpec, ServeConfig};

use common::{post, Kind};

/// What the scripted model answers to every question.
const SCRIPTED_SQL: &str = "SELECT COUNT ( * ) FROM customers";

struct Server {
    /// Dropped first: the server stops before its folders go.
    _run: common::Running,
    addr: SocketAddr,
    _dirs: Vec<tempfile::TempDir>,
}

/// A server over the `shop` database with the scripted model and `feedback_db`.
fn start(feedback_db: Option<PathBuf>) -> Server {
    let (mdir, m) = common::tiny_model(Kind::Scripted, 3);
    let ddir = tempfile::tempdir().unwrap();
    let db = ddir.path().join("shop.sqlite");
    common::write_db(&db);
    let app = App::new(
        m,
        vec![DatabaseSpec {
            name: "shop".to_string(),
            path: db,
        }],
        Vec::new(),
        ServeConfig {
            model_id: Some("tiny".to_string()),
            feedback_db,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let run = common::Running::spawn(app);
    Server {
        addr: run.addr,
        _run: run,
        _dirs: vec![mdir, ddir],
    }
}

fn ask(addr: SocketAddr, question: &str) -> serde_json::Value {
    let r = post(
        addr,
        "/v1/query",
        &json!({"database": "shop", "question": question, "examples": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn error_code(r: &common::Resp) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn answers_carry_a_query_id_and_verdicts_and_corrections_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feedback.sqlite3");
    let s = start(Some(file.clone()));

    let a = ask(s.addr, "How many customers are there?");
    let id = a["query_id"].as_str().expect("a query_id").to_string();
    assert_eq!(id.len(), 32, "{a}");
    assert_eq!(a["sql"], SCRIPTED_SQL, "{a}");
    let b = ask(s.addr, "What is the name of the largest one?");
    let id_b = b["query_id"].as_str().unwrap().to_string();
    assert_ne!(id, id_b, "every answer has its own id");
    let c = ask(s.addr, "Which city?");
    let id_c = c["query_id"].as_str().unwrap().to_string();

    // The answers were stored before they went out, with their result digest.
    let store = FeedbackStore::open_existing(&file).unwrap();
    let rec = store
        .query(&id)
        .unwrap()
        .expect("the answer is in the store");
    assert_eq!(rec.database, "shop");
    assert_eq!(rec.question, "How many customers are there?");
    assert_eq!(rec.sql, SCRIPTED_SQL);
    assert!(rec.valid);
    assert_eq!(rec.adapter, None);
    assert_eq!(rec.result_digest.as_deref().map(str::len), Some(64));

    // Correct.
    let r = post(
        s.addr,
        "/v1/feedback",
        &json!({"query_id": id, "verdict": "correct"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["verdict"], "correct");
    assert!(r.json()["feedback_id"].as_i64().is_some());

    // Wrong without a correction.
    let r = post(
        s.addr,
        "/v1/feedback",
        &json!({"query_id": id_c, "verdict": "wrong"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Wrong with a correction: guarded, run, its rows come back.
    let fix = "SELECT name FROM customers ORDER BY id LIMIT 1";
    let r = post(
        s.addr,
        "/v1/feedback",
        &json!({"query_id": id_b, "verdict": "wrong", "corrected_sql": fix}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["corrected_sql"], fix);
    assert_eq!(v["columns"], json!(["name"]));
    assert_eq!(v["rows"], json!([["Ada"]]));

    let fb = store.feedback_for(&id_b).unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].verdict, Verdict::Wrong);
    assert_eq!(fb[0].corrected_sql.as_deref(), Some(fix));
    assert!(fb[0].corrected_digest.is_some());

    // What `sqlora feedback export` builds on.
    let x = store.training_examples("shop").unwrap();
    let got: Vec<(&str, &str, GoldSource)> = x
        .examples
        .iter()
        .map(|e| (e.question.as_str(), e.sql.as_str(), e.source))
        .collect();
    assert_eq!(
        got,
        [
            (
                "How many customers are there?",
                SCRIPTED_SQL,
                GoldSource::Confirmed
            ),
            (
                "What is the name of the largest one?",
                fix,
                GoldSource::Corrected
            ),
        ]
    );
    assert_eq!(x.skipped_wrong, 1);

    // The counters.
    let m = common::get(s.addr, "/metrics").body;
    assert!(
        m.contains("sqlora_feedback_total{verdict=\"corrected\"} 1"),
        "{m}"
    );
}

#[test]
fn bad_feedback_gets_the_right_4xx_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.sqlite3");
    let s = start(Some(file.clone()));
    let id = ask(s.addr, "How many customers are there?")["query_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (
            json!({"query_id": "0123456789abcdef0123456789abcdef", "verdict": "correct"}),
            404,
            "unknown_query",
        ),
        (
            json!({"query_id": id, "verdict": "maybe"}),
            400,
            "bad_verdict",
        ),
        (json!({"query_id": id}), 400, "bad_request"),
        (
            json!({"query_id": id, "verdict": "wrong", "extra": 1}),
            400,
            "bad_request",
        ),
        (
            json!({"query_id": id, "verdict": "correct", "corrected_sql": "SELECT 1"}),
            400,
            "bad_feedback",
        ),
        (
            json!({"query_id": id, "verdict": "wrong", "corrected_sql": "   "}),
            400,
            "empty_sql",
        ),
        // Refused by the guard, with the guard's reason.
        (
            json!({"query_id": id, "verdict": "wrong", "corrected_sql": "DELETE FROM customers"}),
            422,
            "guard_refused",
        ),
        (
            json!({"query_id": id, "verdict": "wrong", "corrected_sql": "SELECT nme FROM customers"}),
            422,
            "guard_refused",
        ),
        // Accepted by the guard, fails in SQLite (a runtime error).
        (
            json!({"query_id": id, "verdict": "wrong",
                   "corrected_sql": "SELECT json_extract('not json', '$.a')"}),
            422,
            "sql_failed",
        ),
    ];
    for (body, status, code) in cases {
        let r = post(s.addr, "/v1/feedback", &body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(error_code(&r), code, "{body}: {}", r.body);
    }
    let r = post(
        s.addr,
        "/v1/feedback",
        &json!({"query_id": id, "verdict": "wrong", "corrected_sql": "DELETE FROM customers"}),
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("guard"), "{msg}");
    let r = common::request(s.addr, "POST", "/v1/feedback", Some("{not json"));
    assert_eq!((r.status, error_code(&r).as_str()), (400, "bad_json"));

    let store = FeedbackStore::open_existing(&file).unwrap();
    assert!(
        store.feedback_for(&id).unwrap().is_empty(),
        "no refused feedback was stored"
    );
}

#[test]
fn user_sql_runs_through_the_same_guard() {
    let s = start(None);
    let r = post(
        s.addr,
        "/v1/sql",
        &json!({"database": "shop", "sql": "SELECT city FROM customers WHERE city IS NOT NULL ORDER BY id"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rows"], json!([["Paris"], ["Oslo"]]));
    let r = post(
        s.addr,
        "/v1/sql",
        &json!({"database": "shop", "sql": "SELECT id FROM orders", "max_rows": 2}),
    );
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["truncated"], true);
    for (body, status, code) in [
        (
            json!({"database": "shop", "sql": "DROP TABLE orders"}),
            422,
            "guard_refused",
        ),
        (
            json!({"database": "shop", "sql": "PRAGMA table_info(orders)"}),
            422,
            "guard_refused",
        ),
        (
            json!({"database": "nope", "sql": "SELECT 1"}),
            404,
            "unknown_database",
        ),
        (json!({"database": "shop", "sql": ""}), 400, "empty_sql"),
        (
            json!({"database": "shop", "sql": "SELECT 1", "max_rows": 0}),
            400,
            "bad_max_rows",
        ),
    ] {
        let r = post(s.addr, "/v1/sql", &body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(error_code(&r), code, "{body}: {}", r.body);
    }
    // The table is still there.
    let r = post(
        s.addr,
        "/v1/sql",
        &json!({"database": "shop", "sql": "SELECT COUNT(*) FROM orders"}),
    );
    assert_eq!(r.json()["rows"], json!([[5]]));

    // Without a store: no query_id, and feedback is refused by name.
    let a = ask(s.addr, "How many customers are there?");
    assert!(a["query_id"].is_null(), "{a}");
    let r = post(
        s.addr,
        "/v1/feedback",
        &json!({"query_id": "x", "verdict": "correct"}),
    );
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "feedback_disabled")
    );
}

/// The child side of the SIGKILL test: stores a query and a verdict, says so on stdout, then
/// waits to be killed.
fn child_writer(path: &Path) {
    use sqlora_serve::feedback::{NewFeedback, QueryRecord};
    let store = FeedbackStore::open(path).unwrap();
    store
        .record_query(&QueryRecord {
            query_id: "killed".into(),
            created_ms: 1,
            database: "shop".into(),
            adapter: Some("shop".into()),
            question: "How many?".into(),
            sql: "SELECT 1".into(),
            valid: true,
            result_digest: None,
        })
        .unwrap();
    let id = store
        .add_feedback(&NewFeedback {
            query_id: "killed".into(),
            verdict: Verdict::Wrong,
            corrected_sql: Some("SELECT 2".into()),
            corrected_digest: None,
        })
        .unwrap();
    println!("\nFEEDBACK-ACK {id}");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn sigkill_after_an_acknowledged_write_keeps_it() {
    if let Some(path) = std::env::var_os("SQLORA_FEEDBACK_CHILD") {
        child_writer(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.sqlite3");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_after_an_acknowledged_write_keeps_it",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SQLORA_FEEDBACK_CHILD", &file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "the child ended before acknowledging");
        if line.starts_with("FEEDBACK-ACK") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The WAL is still beside the file (no clean close): the row must be in it.
    let store = FeedbackStore::open_existing(&file).unwrap();
    let rec = store
        .query("killed")
        .unwrap()
        .expect("the acknowledged query");
    assert_eq!(rec.adapter.as_deref(), Some("shop"));
    let fb = store.feedback_for("killed").unwrap();
    assert_eq!(fb.len(), 1);
    assert_eq!(fb[0].corrected_sql.as_deref(), Some("SELECT 2"));
}
