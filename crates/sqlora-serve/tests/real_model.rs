//! The service on the real default model (SmolLM2-135M-Instruct) and the bundled retail
//! database: concurrent questions through the continuous batch and the prefix cache answer
//! exactly what the model runtime generates for the same prompt alone (what `sqlora ask`
//! prints), and every accepted answer really executes.
//!
//! The model comes from `SQLORA_MODEL` or the default path; when it is absent the test skips
//! with a message, unless `SQLORA_REQUIRE_MODEL=1`, where it fails.
//!
//! "Exactly" holds on the f32 activation path, which these tests select
//! (`SQLORA_F32_ACTIVATIONS=1`): with the default 8-bit activations a row's logits move by the
//! rounding of its activations, and the ~1e-5 differences between a row's attention alone and
//! in a padded batch can flip such a rounding, so a near-tie may be decided differently in a
//! batch than alone.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::json;
use sqlora_model::generate::GenerateParams;
use sqlora_model::testing::real_model_path as model_path;
use sqlora_serve::{App, DatabaseSpec, ServeConfig};
use sqlora_sqlgen::{extract_sql, PromptBuilder, ANSWER_PRIME};

/// Selects the f32 activation path for every model this test process loads (read once, at the
/// first load; every test here calls this first).
fn f32_activations() {
    std::env::set_var("SQLORA_F32_ACTIVATIONS", "1");
}

/// The bundled retail database, built from its schema and data scripts.
fn retail_db(out: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/retail");
    let path = out.join("retail.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;",
    )
    .unwrap();
    for script in ["schema.sql", "data.sql"] {
        conn.execute_batch(&std::fs::read_to_string(root.join(script)).unwrap())
            .unwrap();
    }
    path
}

#[test]
fn real_model_answers_like_ask_inside_the_batch() {
    f32_activations();
    let Some(path) = model_path() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let db = retail_db(tmp.path());
    let questions = [
        "What is the average unit price of products?",
        "How many customers are there?",
        "List the names of all suppliers.",
        "how many orders have been delivered to Sydney?",
    ];

    // What the model runtime generates for each prompt alone (the path of `sqlora ask`).
    let reference: Vec<String> = {
        let m = sqlora_model::load(&path, &Device::Cpu).unwrap();
        let schema = sqlora_sql::schema::Schema::introspect(&db).unwrap();
        let builder = PromptBuilder::builtin();
        let params = GenerateParams {
            max_new_tokens: 128,
            ..GenerateParams::default()
        };
        questions
            .iter()
            .map(|q| {
                let text = builder.prompt(&m, &schema, q, true).unwrap();
                let ids = m.tokenizer.encode(&text, false).unwrap();
                let g = sqlora_sqlgen::generate(&m, None, &[ids], &params).unwrap();
                extract_sql(&format!("{ANSWER_PRIME}{}", g[0].text))
            })
            .collect()
    };

    let m = sqlora_model::load(&path, &Device::Cpu).unwrap();
    let app = App::new(
        m,
        vec![DatabaseSpec {
            name: "retail".to_string(),
            path: db,
        }],
        Vec::new(),
        ServeConfig::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, stop) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        }));
        (addr, tx)
    });
    let ask = |q: &str| {
        let body = json!({"database": "retail", "question": q}).to_string();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /v1/query HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.0 200"), "{out}");
            serde_json::from_str::<serde_json::Value>(body).unwrap()
        })
    };
    // The first question fills the prefix cache; the others run concurrently in one batch.
    let first = ask(questions[0]).join().unwrap();
    let rest: Vec<_> = questions[1..].iter().map(|q| ask(q)).collect();
    let mut answers = vec![first];
    answers.extend(rest.into_iter().map(|h| h.join().unwrap()));
    let mut valid = 0;
    for ((q, want), got) in questions.iter().zip(&reference).zip(&answers) {
        let sql = got["sql"].as_str().unwrap();
        if got["valid"] == true {
            valid += 1;
            if sql != want {
                // The greedy answer failed and a beam of the fallback ran: it is listed first.
                assert_eq!(got["attempts"][0]["sql"], json!(want), "{q}");
                assert_eq!(got["candidates"][0]["sql"], json!(want), "{q}");
            }
            assert!(got["columns"].as_array().is_some_and(|c| !c.is_empty()));
        } else {
            // Not executable: then it is the reference's own first attempt that failed.
            assert_eq!(got["attempts"][0]["sql"], json!(want), "{q}");
        }
    }
    assert!(valid >= 1, "no answer executed: {answers:?}");
    let cached = answers[1]["usage"]["cached_prompt_tokens"]
        .as_u64()
        .unwrap();
    let prompt = answers[1]["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        cached > prompt / 2,
        "prefix cache: {cached} of {prompt} tokens"
    );
    eprintln!(
        "first (prefix computed): {:.0} ms generate; later (prefix cached, batched): {:?} ms",
        answers[0]["timings"]["generate_ms"].as_f64().unwrap(),
        answers[1..]
            .iter()
            .map(|a| a["timings"]["generate_ms"].as_f64().unwrap().round())
            .collect::<Vec<_>>()
    );
    let _ = stop.send(());
}

/// An adapter trained on another base model is refused with a 4xx naming both bases; the
/// bundled adapter made for this very model file is accepted.
#[test]
fn an_adapter_for_another_base_model_is_refused() {
    f32_activations();
    let Some(path) = model_path() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let db = retail_db(tmp.path());
    let bundled =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../adapters/smollm2-135m-instruct/retail");
    // The same files, but sqlora_meta.json says they were trained on Qwen2.5-Coder-1.5B.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(bundled.join(f), foreign.join(f)).unwrap();
    }
    let qwen =
        sqlora_model::fetch::named_model(sqlora_model::fetch::QWEN_CODER_1_5B).expect("registry");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundled.join("sqlora_meta.json")).unwrap())
            .unwrap();
    meta["base_model"] = json!(qwen.file);
    meta["base_model_sha256"] = json!(qwen.sha256);
    std::fs::write(foreign.join("sqlora_meta.json"), meta.to_string()).unwrap();

    let app = |adapter: &Path| {
        App::new(
            sqlora_model::load(&path, &Device::Cpu).unwrap(),
            vec![DatabaseSpec {
                name: "retail".to_string(),
                path: db.clone(),
            }],
            vec![sqlora_serve::AdapterSpec {
                name: "retail".to_string(),
                path: adapter.to_path_buf(),
            }],
            ServeConfig::default(),
        )
    };
    let err = app(&foreign).expect_err("an adapter for another base is refused");
    assert_eq!(err.status(), 422, "{err}");
    assert_eq!(err.code(), "adapter_wrong_base");
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(msg.contains("qwen2.5-coder-1.5b"), "{msg}");
    app(&bundled).expect("the bundled adapter fits its base");
}
