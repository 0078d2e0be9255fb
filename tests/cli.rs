//! End-to-end tests of the `sqlora` binary: real processes, real SQLite files, real datasets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn sqlora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqlora"))
        .args(args)
        .current_dir(repo())
        .env("SQLORA_HOME", home())
        .output()
        .expect("run sqlora")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A private SQLORA_HOME for the whole test binary.
fn home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// The bundled fixtures, built once (3 databases per domain).
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = home().join("fx");
        let o = sqlora(&[
            "fixtures",
            "build",
            "--out",
            out.to_str().unwrap(),
            "--variants",
            "3",
        ]);
        assert!(o.status.success(), "fixtures build failed: {}", stderr(&o));
        out
    })
}

fn domains() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("datasets"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("schema.sql").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn retail_db() -> String {
    fixtures()
        .join("retail/retail.sqlite")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn fixtures_build_is_deterministic_and_in_spider_layout() {
    let a = home().join("det-a");
    let b = home().join("det-b");
    let run = |p: &Path| {
        let o = sqlora(&[
            "fixtures",
            "build",
            "--out",
            p.to_str().unwrap(),
            "--variants",
            "3",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let (sa, sb) = (run(&a), run(&b));
    let sums = |s: &str, dir: &Path| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains(".sqlite"))
            .map(|l| l.replace(dir.to_str().unwrap(), "OUT"))
            .collect()
    };
    let (la, lb) = (sums(&sa, &a), sums(&sb, &b));
    assert_eq!(la, lb, "two builds must give the same checksums");
    let doms = domains();
    assert!(
        doms.len() >= 6,
        "at least 6 bundled domains, found {doms:?}"
    );
    assert_eq!(la.len(), doms.len() * 3);
    for d in &doms {
        assert!(a.join(d).join(format!("{d}.sqlite")).is_file());
        let n = std::fs::read_dir(a.join(d))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".sqlite")
            })
            .count();
        assert_eq!(n, 3, "{d}: base + 2 variants");
    }
    assert!(sa.contains("built"), "it says where it wrote them: {sa}");
}

#[test]
fn schema_prints_ddl_and_compact_form() {
    let o = sqlora(&["schema", &retail_db()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("CREATE TABLE"), "{s}");
    assert!(s.contains("-- compact"), "{s}");
    let o = sqlora(&["schema", "--json", &retail_db()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["tables"].as_array().unwrap().len() >= 5);
}

#[test]
fn validate_accepts_reads_and_refuses_writes_with_codes() {
    let db = retail_db();
    let ok = sqlora(&["validate", "--db", &db, "SELECT count(*) FROM customers"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    for (sql, code) in [
        ("DROP TABLE customers", "ddl"),
        ("DELETE FROM customers", "not_read_only"),
        ("SELECT 1; SELECT 2", "multiple_statements"),
        ("PRAGMA writable_schema=1", "pragma"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "attach"),
    ] {
        let o = sqlora(&["validate", "--json", "--db", &db, sql]);
        assert_eq!(o.status.code(), Some(1), "{sql} must be refused");
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["error"]["code"], code, "{sql}: {v}");
    }
    let o = sqlora(&[
        "validate",
        "--json",
        "--db",
        &db,
        "SELECT custmer_id FROM customers",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], "unknown_column");
    assert_eq!(v["error"]["suggestion"], "customer_id", "{v}");
}

#[test]
fn exec_runs_reads_and_enforces_budgets() {
    let db = retail_db();
    let o = sqlora(&[
        "exec",
        "--json",
        "--db",
        &db,
        "SELECT count(*) AS n FROM customers",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["columns"][0], "n");
    assert!(v["rows"][0][0].as_i64().unwrap() > 0);

    let o = sqlora(&["exec", "--db", &db, "UPDATE customers SET email = NULL"]);
    assert_eq!(o.status.code(), Some(1), "writes are refused");

    let t = std::time::Instant::now();
    let o = sqlora(&[
        "exec",
        "--db",
        &db,
        "--timeout-ms",
        "500",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ]);
    assert_eq!(o.status.code(), Some(4), "runaway CTE is a budget overrun");
    assert!(t.elapsed().as_secs_f64() < 10.0);

    let o = sqlora(&[
        "exec",
        "--db",
        &db,
        "--max-rows",
        "5",
        "SELECT * FROM customers",
    ]);
    assert_eq!(o.status.code(), Some(4), "row budget overrun");
}

/// Gold against gold scores 100% on every bundled split, in test-suite mode (3 databases).
#[test]
fn gold_vs_gold_is_perfect_on_every_bundled_split() {
    for d in domains() {
        for split in ["train", "dev", "test"] {
            let f = repo()
                .join("datasets")
                .join(&d)
                .join(format!("{split}.jsonl"));
            let f = f.to_str().unwrap();
            let o = sqlora(&[
                "eval",
                "--json",
                "--dataset",
                f,
                "--predictions",
                f,
                "--db-dir",
                fixtures().to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{d}/{split}: {}", stderr(&o));
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(v["ex"].as_f64(), Some(1.0), "{d}/{split}: {v}");
        }
    }
}

/// A corrupted prediction set scores what we compute by hand: every 4th prediction is
/// replaced by something that cannot be right (a write, an unknown table, a syntax error, a
/// query on another table), the rest are gold (written as plain text, one query a line).
#[test]
fn corrupted_predictions_score_what_we_compute_by_hand() {
    let dev = repo().join("datasets/retail/dev.jsonl");
    let text = std::fs::read_to_string(&dev).unwrap();
    let gold: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["sql"].as_str().unwrap().to_string()
        })
        .collect();
    let bad = [
        "DELETE FROM customers",
        "SELECT * FROM no_such_table",
        "SELEC name FROM customers",
        "SELECT 'not a real answer', 42, 42, 42, 42, 42",
    ];
    let mut wrong = 0;
    let preds: Vec<String> = gold
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i % 4 == 3 {
                wrong += 1;
                bad[(i / 4) % bad.len()].to_string()
            } else {
                g.clone()
            }
        })
        .collect();
    let pred_file = home().join("corrupted.sql");
    std::fs::write(&pred_file, preds.join("\n") + "\n").unwrap();
    let details = home().join("details.jsonl");
    let o = sqlora(&[
        "eval",
        "--json",
        "--dataset",
        dev.to_str().unwrap(),
        "--predictions",
        pred_file.to_str().unwrap(),
        "--db-dir",
        fixtures().to_str().unwrap(),
        "--details",
        details.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let expected = (gold.len() - wrong) as f64 / gold.len() as f64;
    assert!(
        (v["ex"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{v} vs {expected}"
    );
    let lines = std::fs::read_to_string(&details).unwrap();
    let incorrect = lines
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["correct"] == false)
        .count();
    assert_eq!(incorrect, wrong);
    // The human-readable report prints the same number.
    let o = sqlora(&[
        "eval",
        "--dataset",
        dev.to_str().unwrap(),
        "--predictions",
        pred_file.to_str().unwrap(),
        "--db-dir",
        fixtures().to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(stdout(&o).to_lowercase().contains("ex"), "{}", stdout(&o));
}

#[test]
fn import_spider_sample_round_trips() {
    let s = repo().join("tests/fixtures/spider_sample");
    let out = home().join("spider-out");
    let o = sqlora(&[
        "import-spider",
        "--tables",
        s.join("tables.json").to_str().unwrap(),
        "--examples",
        s.join("dev.json").to_str().unwrap(),
        "--db-dir",
        s.join("database").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("imported"));
    // The imported folder is a dataset like the bundled ones: build it and score gold vs gold.
    let fx = home().join("spider-fx");
    let o = sqlora(&[
        "fixtures",
        "build",
        "--datasets",
        out.to_str().unwrap(),
        "--out",
        fx.to_str().unwrap(),
        "--variants",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut n = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let dev = entry.unwrap().path().join("dev.jsonl");
        if !dev.is_file() {
            continue;
        }
        n += 1;
        let o = sqlora(&[
            "eval",
            "--json",
            "--dataset",
            dev.to_str().unwrap(),
            "--predictions",
            dev.to_str().unwrap(),
            "--db-dir",
            fx.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["ex"].as_f64(), Some(1.0));
    }
    assert!(n >= 2, "the sample has two databases");
}

#[test]
fn unknown_database_is_a_clear_error() {
    let o = sqlora(&["schema", "no_such_domain"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("known domains"), "{}", stderr(&o));
}

/// The real model for the model tests (see `sqlora_model::testing::real_model_path`).
fn real_model() -> Option<String> {
    sqlora_model::testing::real_model_path().map(|p| p.to_string_lossy().into_owned())
}

#[test]
fn generate_prints_greedy_continuation_as_json() {
    let Some(model) = real_model() else { return };
    let run = || {
        let o = sqlora(&[
            "generate",
            "--model",
            &model,
            "--max-tokens",
            "12",
            "--json",
            "The capital of France is",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "greedy generation is deterministic");
    let tokens = a["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() <= 12, "{a}");
    assert!(
        a["text"].as_str().unwrap().to_lowercase().contains("paris"),
        "{a}"
    );
}

#[test]
fn ask_answers_with_checked_sql_and_rows() {
    let Some(model) = real_model() else { return };
    let o = sqlora(&[
        "ask",
        "--model",
        &model,
        "--db",
        &retail_db(),
        "--json",
        "How many customers are there?",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    for key in ["sql", "valid", "error", "columns", "rows", "attempts"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["sql"].is_string(), "{v}");
    if v["valid"] == true {
        assert_eq!(o.status.code(), Some(0));
        assert!(v["error"].is_null());
        assert!(!v["columns"].as_array().unwrap().is_empty());
    } else {
        assert_eq!(o.status.code(), Some(1), "a refused answer exits 1: {v}");
        // The guard's own code comes through (parse, unknown_column, ...), not a generic one.
        let code = v["error"]["code"].as_str().unwrap();
        assert!(!code.is_empty() && code != "guard", "{v}");
        assert!(!v["attempts"].as_array().unwrap().is_empty());
    }
}

/// `sqlora ask --model MODEL --db <retail> ARGS...`.
fn ask_retail(model: &str, args: &[&str]) -> Output {
    let db = retail_db();
    let mut all = vec!["ask", "--model", model, "--db", &db];
    all.extend_from_slice(args);
    sqlora(&all)
}

#[test]
fn ask_print_prompt_shows_what_the_model_is_sent_and_generates_nothing() {
    let Some(model) = real_model() else { return };
    let question = "Which customers live in Berlin?";
    let print_prompt = |k: &str| {
        let o = ask_retail(&model, &["--k", k, "--print-prompt", question]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let prompt = print_prompt("2");
    // The chat template's turns, the schema, retrieved examples, the question, the prime.
    assert!(prompt.contains("<|im_start|>"), "{prompt}");
    assert!(prompt.contains("customers(customer_id PK"), "{prompt}");
    assert!(prompt.contains("SQL: SELECT"), "{prompt}");
    assert!(prompt.contains(question), "{prompt}");
    assert!(prompt.trim_end().ends_with("SELECT"), "{prompt}");
    let zero = print_prompt("0");
    assert!(!zero.contains("SQL: SELECT"), "{zero}");
    assert!(zero.contains(question) && zero.trim_end().ends_with("SELECT"));
}

fn peft_fixture() -> PathBuf {
    repo().join("tests/fixtures/reference/peft/peft_made")
}

#[test]
fn adapter_inspect_reports_and_refuses_broken_files() {
    let Some(model) = real_model() else { return };
    let o = sqlora(&[
        "adapter",
        "inspect",
        "--json",
        "--model",
        &model,
        peft_fixture().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["rank"], 8, "{v}");
    assert_eq!(v["modules"], 21, "{v}");
    assert!(v["parameters"].as_u64().unwrap() > 0);
    assert!(v["checked_against"].is_string());

    // A broken copy: truncated weights, then DoRA in the config.
    let broken = home().join("broken-adapter");
    std::fs::create_dir_all(&broken).unwrap();
    let cfg = std::fs::read_to_string(peft_fixture().join("adapter_config.json")).unwrap();
    std::fs::write(broken.join("adapter_config.json"), &cfg).unwrap();
    let w = std::fs::read(peft_fixture().join("adapter_model.safetensors")).unwrap();
    std::fs::write(broken.join("adapter_model.safetensors"), &w[..w.len() / 2]).unwrap();
    let o = sqlora(&["adapter", "inspect", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a truncated file is refused");
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));

    std::fs::write(broken.join("adapter_model.safetensors"), &w).unwrap();
    let mut c: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    c["use_dora"] = serde_json::Value::Bool(true);
    std::fs::write(broken.join("adapter_config.json"), c.to_string()).unwrap();
    let o = sqlora(&["adapter", "inspect", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).to_lowercase().contains("dora"), "{}", stderr(&o));
}

#[test]
fn generate_with_an_adapter_changes_the_continuation_deterministically() {
    let Some(model) = real_model() else { return };
    let gen = |adapter: Option<&Path>| {
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--max-tokens",
            "16",
            "--json",
        ];
        let a;
        if let Some(p) = adapter {
            a = p.to_string_lossy().into_owned();
            args.push("--adapter");
            args.push(&a);
        }
        args.push("SELECT name FROM customers WHERE");
        let o = sqlora(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["tokens"].clone()
    };
    // A strong adapter written by sqlora's PEFT writer: rank 4 on every v_proj, large B.
    let dir = home().join("strong-adapter");
    {
        use sqlora_model::lora::{targeted_linears, LoraAdapter, LoraConfig};
        let m = sqlora_model::load(Path::new(&model), &candle_core::Device::Cpu).unwrap();
        let config = LoraConfig::new(4, 8.0, &["v_proj"]);
        let mut modules = std::collections::BTreeMap::new();
        for (k, lin) in targeted_linears(&m.model, &config)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            let (i, o) = (lin.in_features(), lin.out_features());
            let val = |n: usize, s: usize| -> Vec<f32> {
                (0..n)
                    .map(|j| (((j * 7919 + s * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.5)
                    .collect()
            };
            let a = candle_core::Tensor::from_vec(val(4 * i, k), (4, i), &candle_core::Device::Cpu)
                .unwrap();
            let b =
                candle_core::Tensor::from_vec(val(o * 4, k + 1), (o, 4), &candle_core::Device::Cpu)
                    .unwrap();
            modules.insert(lin.name().to_string(), (a, b));
        }
        let adapter = LoraAdapter::new("strong", config, modules).unwrap();
        sqlora_model::peft::save_adapter(&adapter, &dir).unwrap();
    }
    let base = gen(None);
    let with = gen(Some(&dir));
    assert_eq!(with, gen(Some(&dir)), "deterministic");
    // The PEFT-made fixture loads and generates too.
    gen(Some(&peft_fixture()));
    assert_ne!(base, with, "a strong adapter changes greedy output");
}

#[test]
fn bundled_smollm2_adapters_load_and_fit_their_base_model() {
    // SQLORA_MODEL is the SmolLM2 test model; the bundled adapters for it live under a folder
    // named after their base.
    let Some(model) = real_model() else { return };
    let dir = repo().join("adapters").join("smollm2-135m-instruct");
    let entries = std::fs::read_dir(&dir).expect("the bundled SmolLM2 adapters");
    let mut seen = 0;
    for e in entries.flatten() {
        let path = e.path();
        if !path.join("adapter_config.json").is_file() {
            continue;
        }
        let o = sqlora(&[
            "adapter",
            "inspect",
            path.to_str().unwrap(),
            "--model",
            &model,
            "--json",
        ]);
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["rank"], 8, "{}", path.display());
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path.join("sqlora_meta.json")).unwrap())
                .unwrap();
        // The adapter was trained on this very model file.
        assert_eq!(
            meta["base_model_sha256"],
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        );
        assert!(meta["test_ex"].is_number(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} adapters under {}", dir.display());
}

/// A dataset folder with the first two retail test questions as `test.jsonl` and the retail
/// training split plus a copy of the first test question (id `leak`) as `train.jsonl`.
fn leaky_dataset(dir: &Path) -> (PathBuf, String) {
    let test = std::fs::read_to_string(repo().join("datasets/retail/test.jsonl")).unwrap();
    let test: Vec<&str> = test.lines().take(2).collect();
    let first: serde_json::Value = serde_json::from_str(test[0]).unwrap();
    let mut leak = first.clone();
    leak["id"] = "leak".into();
    let train = std::fs::read_to_string(repo().join("datasets/retail/train.jsonl")).unwrap();
    std::fs::write(dir.join("test.jsonl"), test.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("train.jsonl"), format!("{leak}\n{train}")).unwrap();
    (
        dir.join("test.jsonl"),
        first["question"].as_str().unwrap().to_string(),
    )
}

#[test]
fn eval_with_examples_retrieves_from_train_and_never_the_question_itself() {
    let Some(model) = real_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (test, _) = leaky_dataset(dir.path());
    let details = dir.path().join("details.jsonl");
    let fx = fixtures().to_str().unwrap();
    // `sqlora eval --base` on the leaky dataset with `extra` flags.
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--base",
            "--model",
            &model,
            "--dataset",
            test.to_str().unwrap(),
            "--db-dir",
            fx,
        ];
        args.extend_from_slice(extra);
        sqlora(&args)
    };
    let o = eval(&[
        "--examples-k",
        "2",
        "--max-tokens",
        "8",
        "--json",
        "--details",
        details.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["run"]["examples_k"], 2, "{v}");
    assert!(v["run"]["examples"]
        .as_str()
        .unwrap()
        .ends_with("train.jsonl"));
    let lines = std::fs::read_to_string(&details).unwrap();
    for line in lines.lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        let shown = d["examples"].as_array().unwrap();
        assert_eq!(shown.len(), 2, "{d}");
        assert!(!shown.iter().any(|id| id == "leak"), "{d}");
    }
    // Without --examples-k, eval prompts as the service does (3 examples from train.jsonl);
    // --examples-k 0 is the zero-shot prompt.
    let k_of = |extra: &[&str]| {
        let mut args = vec!["--limit", "1", "--max-tokens", "4", "--json"];
        args.extend_from_slice(extra);
        let o = eval(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["run"]["examples_k"].clone()
    };
    assert_eq!(k_of(&[]), 3);
    assert_eq!(k_of(&["--examples-k", "0"]), 0);
    // Never from the evaluated file; a bad examples file names its line.
    let own = eval(&["--examples-k", "2", "--examples", test.to_str().unwrap()]);
    assert!(!own.status.success());
    assert!(
        stderr(&own).contains("evaluated dataset"),
        "{}",
        stderr(&own)
    );
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"question\": \"q\", \"sql\": \"SELECT 1\"}\n{\"question\": 3}\n",
    )
    .unwrap();
    let o = eval(&["--examples-k", "2", "--examples", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.jsonl, line 2"), "{}", stderr(&o));
}

#[test]
fn ask_shows_retrieved_examples_and_k_zero_is_zero_shot() {
    let Some(model) = real_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, question) = leaky_dataset(dir.path());
    let train = dir.path().join("train.jsonl");
    let ask = |k: &str| {
        let o = ask_retail(
            &model,
            &[
                "--examples",
                train.to_str().unwrap(),
                "--k",
                k,
                "--max-tokens",
                "8",
                "--json",
                &question,
            ],
        );
        serde_json::from_str::<serde_json::Value>(&stdout(&o))
            .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)))
    };
    let v = ask("2");
    let shown = v["examples"].as_array().unwrap();
    assert_eq!(shown.len(), 2, "{v}");
    // the asked question is in the file (as `leak`) but never shown
    assert!(
        shown
            .iter()
            .all(|e| e["id"] != "leak" && e["sql"].is_string()),
        "{v}"
    );
    assert_eq!(ask("0")["examples"], serde_json::json!([]));
    // a database that is no bundled domain has no default examples; asking for some says how
    let mine = dir.path().join("mine.sqlite");
    std::fs::copy(retail_db(), &mine).unwrap();
    let o = sqlora(&[
        "ask",
        "--model",
        &model,
        "--db",
        mine.to_str().unwrap(),
        "--k",
        "2",
        "How many?",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--examples FILE"), "{}", stderr(&o));
}
