//! `sqlora train` end to end on a tiny random Hugging Face-style model folder: a run killed
//! with SIGKILL in the middle of training and resumed with `--resume` ends with the same adapter
//! as an uninterrupted run with the same seed; bad arguments are refused clearly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlora_model::testing::{word_level_tokenizer_json, TinyLlama};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sqlora"))
}

/// A random 2-layer Llama folder (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json with a chat template); words `w2`..`w63`, everything else `<unk>`.
fn tiny_model_folder(dir: &Path) {
    let shape = TinyLlama {
        ffn: 64,
        max_positions: 1024,
        ..TinyLlama::default()
    };
    shape.write_folder(dir, &shape.weights(7));
    let tokenizer = word_level_tokenizer_json(&["<unk>", "</s>"], shape.vocab);
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let template = "{% for m in messages %}w2 {{ m.role }} {{ m.content }} w3 {% endfor %}\
                    {% if add_generation_prompt %}w2 assistant {% endif %}";
    let cfg = serde_json::json!({"eos_token": "</s>", "pad_token": "<unk>",
        "chat_template": template});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
}

/// A one-table SQLite database and 24 training examples in the documented JSONL format.
fn tiny_dataset(dir: &Path) -> (PathBuf, PathBuf) {
    let db = dir.join("tiny.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL); INSERT INTO t VALUES (1, 'x');",
    )
    .unwrap();
    drop(conn);
    let mut rng = StdRng::seed_from_u64(3);
    let mut lines = String::new();
    for i in 0..24 {
        let q: Vec<String> = (0..rng.gen_range(2..6))
            .map(|_| format!("w{}", rng.gen_range(4..40)))
            .collect();
        let key = rng.gen_range(40..60);
        let ex = serde_json::json!({"id": format!("tiny_{i}"), "db_id": "tiny",
            "question": q.join(" "), "sql": format!("SELECT w{key} w{} w{}", key - 10, key - 20),
            "difficulty": "easy"});
        lines.push_str(&format!("{ex}\n"));
    }
    let train = dir.join("train.jsonl");
    std::fs::write(&train, lines).unwrap();
    (train, db)
}

/// The tiny model folder and dataset in `dir`: (model folder, train.jsonl, database).
fn tiny_setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    tiny_model_folder(&model);
    let (train, db) = tiny_dataset(dir);
    (model, train, db)
}

fn train_cmd(model: &Path, train: &Path, db: &Path, out: &Path, run: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["train", "--dataset"])
        .arg(train)
        .arg("--db")
        .arg(db)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .arg("--run-dir")
        .arg(run)
        .args([
            "--rank",
            "4",
            "--lr",
            "0.01",
            "--max-steps",
            "60",
            "--micro-batch",
            "4",
            "--grad-accum",
            "2",
            "--set",
            "dropout=0.1",
            "--set",
            "save_interval=3",
            "--set",
            "warmup_steps=2",
            // adapters on the upper layer only: the frozen layer's hidden states come from the
            // cache after the first epoch, and a resumed run reloads the cache's checkpoint
            "--set",
            "layers_to_transform=[1]",
            "--no-test",
            "--dev-questions",
            "0",
        ])
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn run_ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sigkill_mid_training_then_resume_gives_the_uninterrupted_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, train, db) = tiny_setup(tmp.path());

    // The uninterrupted run.
    let (out_a, run_a) = (tmp.path().join("a"), tmp.path().join("run_a"));
    run_ok(train_cmd(&model, &train, &db, &out_a, &run_a));
    let want = std::fs::read(out_a.join("adapter_model.safetensors")).unwrap();

    // Killed with SIGKILL once a checkpoint past step 6 exists, i.e. mid-training.
    let (out_b, run_b) = (tmp.path().join("b"), tmp.path().join("run_b"));
    let mut child = train_cmd(&model, &train, &db, &out_b, &run_b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let killed_at = loop {
        let newest = std::fs::read_dir(run_b.join("checkpoints"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_prefix("step-")?
                            .parse::<usize>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if newest >= 6 {
            child.kill().unwrap(); // SIGKILL on Unix
            break newest;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training finished ({status}) before it could be killed");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.wait().unwrap();
    assert!(killed_at < 60);
    let frozen = run_b
        .join("checkpoints")
        .join(format!("step-{killed_at:06}"))
        .join("frozen.safetensors");
    assert!(
        std::fs::metadata(&frozen).is_ok_and(|m| m.len() > 1024),
        "the checkpoint keeps the frozen layer's cached hidden states: {}",
        frozen.display()
    );
    assert!(
        !out_b.join("adapter_model.safetensors").exists(),
        "a killed run must not leave a final adapter"
    );

    // Resume: continues from the newest complete checkpoint and finishes.
    let mut resume = train_cmd(&model, &train, &db, &out_b, &run_b);
    resume.arg("--resume");
    let out = run_ok(resume);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("resuming from"), "{log}");
    let got = std::fs::read(out_b.join("adapter_model.safetensors")).unwrap();
    assert!(
        got == want,
        "the resumed adapter differs from the uninterrupted one"
    );

    // Both runs logged every step exactly once.
    let steps = |run: &Path| -> Vec<u64> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("loss").is_some())
            .filter_map(|v| v["step"].as_u64())
            .collect()
    };
    assert_eq!(steps(&run_b), (1..=60).collect::<Vec<u64>>());
    assert_eq!(steps(&run_a), steps(&run_b));
    for f in [
        "adapter_config.json",
        "sqlora_meta.json",
        "loss.svg",
        "metrics.jsonl",
    ] {
        assert!(out_b.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn bad_training_arguments_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["train", "--domain", "no_such_domain"])
        .env("SQLORA_DATASETS", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "rank = 0\n").unwrap();
    let out = Command::new(bin())
        .args(["train", "--domain", "retail", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rank must be at least 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin())
        .args(["train", "--domain", "retail", "--set", "no_such_key=3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
    // Retrieved examples in dev EX are scored one database at a time: refused before the
    // model loads (no model is given here, so reaching the load would fail differently).
    let out = Command::new(bin())
        .args(["train", "--domain", "all", "--examples-k", "3"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("SQLORA_MODEL", tmp.path().join("no_model_here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--examples-k 3") && err.contains("databases"),
        "{err}"
    );
}

#[test]
fn dev_ex_can_be_scored_with_retrieved_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, train, db) = tiny_setup(tmp.path());
    let (out, run) = (tmp.path().join("adapter"), tmp.path().join("run"));
    // Dev questions with gold queries that run (the training split's are word salad).
    let dev = tmp.path().join("dev.jsonl");
    std::fs::write(
        &dev,
        concat!(
            r#"{"id": "d1", "db_id": "tiny", "question": "w5 w6 how many", "sql": "SELECT COUNT(*) FROM t", "difficulty": "easy"}"#,
            "\n",
            r#"{"id": "d2", "db_id": "tiny", "question": "w7 every b", "sql": "SELECT b FROM t", "difficulty": "easy"}"#,
            "\n"
        ),
    )
    .unwrap();
    let mut c = Command::new(bin());
    c.args(["train", "--dataset"])
        .arg(&train)
        .arg("--dev")
        .arg(&dev)
        .arg("--db")
        .arg(&db)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg("--run-dir")
        .arg(&run)
        .args(["--rank", "2", "--max-steps", "2", "--micro-batch", "4"])
        .args(["--examples-k", "2", "--dev-questions", "2", "--no-test"])
        .args(["--set", "eval_interval=2", "--set", "save_interval=0"])
        .env("RAYON_NUM_THREADS", "1");
    let o = run_ok(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dev and test EX with 2 retrieved training examples per prompt"),
        "{err}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"dev_ex\""), "{metrics}");
}

#[test]
fn training_prompts_can_show_retrieved_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, train, db) = tiny_setup(tmp.path());
    // The mean training prompt length `train` reports, with `k` retrieved examples a prompt.
    let mean_tokens = |k: &str| -> f64 {
        let dir = tmp.path().join(format!("k{k}"));
        let mut c = Command::new(bin());
        c.args(["train", "--dataset"])
            .arg(&train)
            .arg("--db")
            .arg(&db)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(dir.join("adapter"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .args(["--rank", "2", "--max-steps", "1", "--micro-batch", "4"])
            .args(["--train-examples-k", k, "--no-test"])
            .args(["--set", "save_interval=0"])
            .env("RAYON_NUM_THREADS", "1");
        let o = run_ok(c);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let shown = err.contains(&format!("{k} retrieved examples in every training prompt"));
        assert_eq!(shown, k != "0", "{err}");
        let mean = err
            .split("mean ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok());
        mean.unwrap_or_else(|| panic!("no mean prompt length in: {err}"))
    };
    let (zero_shot, with_examples) = (mean_tokens("0"), mean_tokens("2"));
    assert!(
        with_examples > zero_shot + 10.0,
        "{zero_shot} tokens zero-shot, {with_examples} with 2 examples"
    );
}
