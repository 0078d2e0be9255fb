//! The feedback loop end to end with the real binary and the real SmolLM2 model: `sqlora serve`
//! answers with a `query_id`, takes a confirmation and a correction (each acknowledged with a
//! 200), is killed with SIGKILL, and the feedback file still holds both; `sqlora feedback
//! export` writes them as training JSONL; `sqlora train --extra` continues the retail adapter
//! with them for a few steps; `sqlora ask` answers with the new adapter. Malformed `--extra`
//! files are refused with their line number before any model loads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn sqlora(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sqlora"));
    c.current_dir(repo())
        .env("SQLORA_HOME", home)
        .env_remove("SQLORA_FIXTURES")
        .env_remove("SQLORA_DATASETS");
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run sqlora")
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One HTTP/1.0 POST with a JSON body; the status and the parsed body.
fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text}"));
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, v)
}

/// Kills the server if a test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sqlora serve` on a free loopback port over `db_dir` with `feedback_db`; its address.
fn serve(home: &Path, model: &str, db_dir: &Path, feedback_db: &Path) -> (Server, String) {
    let mut c = sqlora(home);
    c.args(["serve", "--addr", "127.0.0.1:0", "--model", model])
        .arg("--db-dir")
        .arg(db_dir)
        .arg("--feedback-db")
        .arg(feedback_db)
        .args(["--examples-k", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("sqlora serve ended before it listened")
            .unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().to_string();
        }
    };
    (server, addr)
}

#[test]
fn a_malformed_extra_file_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let good = json!({"id": "x1", "db_id": "retail", "question": "How many customers?",
                      "sql": "SELECT COUNT(*) FROM customers", "difficulty": "easy"});
    let cases: [(&str, Vec<String>, &str); 4] = [
        (
            "not JSON",
            vec![good.to_string(), "{not json".into()],
            "bad.jsonl:2",
        ),
        (
            "another database",
            vec![
                String::new(),
                good.to_string(),
                json!({"id": "x2", "db_id": "clinic", "question": "q",
                       "sql": "SELECT 1", "difficulty": "easy"})
                .to_string(),
            ],
            "bad.jsonl:3: db_id 'clinic'",
        ),
        (
            "a write",
            vec![json!({"id": "x3", "db_id": "retail", "question": "q",
                        "sql": "DELETE FROM customers", "difficulty": "easy"})
            .to_string()],
            "bad.jsonl:1",
        ),
        (
            "an unknown column",
            vec![json!({"id": "x4", "db_id": "retail", "question": "q",
                        "sql": "SELECT nme FROM customers", "difficulty": "easy"})
            .to_string()],
            "bad.jsonl:1",
        ),
    ];
    for (what, lines, want) in cases {
        let file = tmp.path().join("bad.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let mut c = sqlora(home);
        c.args([
            "train",
            "--domain",
            "retail",
            "--model",
            "/nonexistent/model.gguf",
        ])
        .arg("--extra")
        .arg(&file);
        let o = run(c);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{what}: {}", stderr(&o));
        // Refused before the model was looked for.
        assert!(
            !stderr(&o).contains("nonexistent"),
            "{what}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn ask_correct_export_train_ask_again() {
    let Some(model) = sqlora_model::testing::real_model_path() else {
        return;
    };
    let model = model.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");

    // The retail database alone (built from datasets/retail by `ask`'s first use).
    let question = "How many customers are there?";
    let mut c = sqlora(&home);
    c.args([
        "ask", "--model", &model, "--db", "retail", "--json", question,
    ]);
    let first: Value = serde_json::from_slice(&run(c).stdout).unwrap();
    assert!(first["sql"].is_string(), "{first}");
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(
        home.join("fixtures/retail/retail.sqlite"),
        served.join("retail.sqlite"),
    )
    .unwrap();

    // Ask over HTTP; confirm one answer, correct another. Each 200 means "on disk".
    let feedback_db = tmp.path().join("feedback.sqlite3");
    let (mut server, addr) = serve(&home, &model, &served, &feedback_db);
    let ask = |q: &str| {
        let (status, v) = post(
            &addr,
            "/v1/query",
            &json!({"database": "retail", "question": q}),
        );
        assert_eq!(status, 200, "{v}");
        v["query_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no query_id: {v}"))
            .to_string()
    };
    let id_a = ask(question);
    let id_b = ask("Which products cost more than 100?");
    let corrected = "SELECT name FROM products WHERE unit_price > 100";
    let (status, v) = post(
        &addr,
        "/v1/feedback",
        &json!({"query_id": id_b, "verdict": "wrong", "corrected_sql": corrected}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["columns"].is_array(), "{v}");
    // Confirm the first: the gold SQL is the answer's own. Its SQL is only exported when it was
    // valid, so correct it instead when the model's answer did not pass.
    let (status, v) = post(
        &addr,
        "/v1/feedback",
        &json!({"query_id": id_a, "verdict": "wrong",
                "corrected_sql": "SELECT COUNT(*) FROM customers"}),
    );
    assert_eq!(status, 200, "{v}");
    let t0 = Instant::now();
    server.0.kill().unwrap(); // SIGKILL: no clean shutdown, no checkpoint of the WAL
    server.0.wait().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));

    // Both acknowledged writes are in the file.
    let conn = rusqlite::Connection::open(&feedback_db).unwrap();
    let stored: Vec<(String, Option<String>)> = conn
        .prepare("SELECT query_id, corrected_sql FROM feedback ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        stored,
        [
            (id_b.clone(), Some(corrected.to_string())),
            (
                id_a.clone(),
                Some("SELECT COUNT(*) FROM customers".to_string())
            )
        ]
    );
    let questions: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM queries WHERE database = 'retail'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(questions, 2);
    drop(conn);

    // Export: the dataset format, corrected SQL as gold, to a file and to standard output.
    let exported = tmp.path().join("feedback.jsonl");
    let mut c = sqlora(&home);
    c.args(["feedback", "export", "--database", "retail"])
        .arg("--feedback-db")
        .arg(&feedback_db)
        .arg("--out")
        .arg(&exported);
    let o = ok(run(c));
    assert!(
        stderr(&o).contains("2 examples (2 corrected"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    // Oldest query first.
    assert_eq!(rows[0]["question"], question);
    assert_eq!(rows[0]["sql"], "SELECT COUNT(*) FROM customers");
    assert_eq!(rows[1]["sql"], corrected);
    for r in &rows {
        assert_eq!(r["db_id"], "retail");
        assert!(r["id"].as_str().unwrap().starts_with("retail_feedback_"));
        assert!(r["difficulty"].is_string());
    }
    let mut c = sqlora(&home);
    c.args(["feedback", "export", "--database", "retail"])
        .arg("--feedback-db")
        .arg(&feedback_db);
    assert_eq!(String::from_utf8(ok(run(c)).stdout).unwrap(), text);
    let mut c = sqlora(&home);
    c.args(["feedback", "export", "--database", "clinic"])
        .arg("--feedback-db")
        .arg(&feedback_db);
    assert!(ok(run(c)).stdout.is_empty());

    // Train a few steps on retail plus the feedback, continuing the bundled retail adapter
    // (adapters/<base>/retail; the result goes to a temporary folder).
    let adapter = tmp.path().join("adapter");
    let mut c = sqlora(&home);
    c.args(["train", "--domain", "retail", "--model", &model])
        .arg("--extra")
        .arg(&exported)
        .arg("--out")
        .arg(&adapter)
        .arg("--run-dir")
        .arg(tmp.path().join("run"))
        .args([
            "--max-steps",
            "2",
            "--micro-batch",
            "2",
            "--grad-accum",
            "1",
            "--no-test",
            "--dev-questions",
            "0",
            "--dev-loss-examples",
            "0",
        ]);
    let o = ok(run(c));
    let err = stderr(&o);
    assert!(err.contains("2 extra training examples"), "{err}");
    assert!(
        err.contains("continuing the adapter in adapters/smollm2-135m-instruct/retail"),
        "{err}"
    );
    assert!(adapter.join("adapter_model.safetensors").is_file());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("sqlora_meta.json")).unwrap())
            .unwrap();
    // The bundled adapter's shape, one more example per feedback row.
    assert_eq!(meta["config"]["rank"], 8, "{meta}");
    assert_eq!(meta["steps"], 2, "{meta}");
    let bundled: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("adapters/smollm2-135m-instruct/retail/sqlora_meta.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["examples"].as_u64().unwrap(),
        bundled["examples"].as_u64().unwrap() + 2,
        "{meta}"
    );

    // It continued the bundled adapter: two small steps away from it, not from a fresh start
    // (whose B matrices begin at zero).
    let load = |dir: &Path| {
        candle_core::safetensors::load(
            dir.join("adapter_model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap()
    };
    let (new, old) = (
        load(&adapter),
        load(&repo().join("adapters/smollm2-135m-instruct/retail")),
    );
    assert_eq!(
        new.keys().collect::<std::collections::BTreeSet<_>>(),
        old.keys().collect::<std::collections::BTreeSet<_>>()
    );
    let norm = |t: &candle_core::Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    };
    for (key, b_old) in old.iter().filter(|(k, _)| k.contains("lora_B")) {
        let moved = norm(&(&new[key] - b_old).unwrap());
        assert!(
            moved < 0.5 * norm(b_old),
            "{key}: moved {moved} from the bundled adapter's {}",
            norm(b_old)
        );
    }

    // Ask again with the continued adapter: it loads and answers.
    let mut c = sqlora(&home);
    c.args(["ask", "--model", &model, "--db", "retail", "--json"])
        .arg("--adapter")
        .arg(&adapter)
        .arg(question);
    let o = run(c);
    let again: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert!(again["sql"].is_string(), "{again}");
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
}
