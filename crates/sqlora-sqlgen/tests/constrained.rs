//! Schema-constrained decoding through the pipeline, with the real models on the bundled
//! databases: a constrained answer that ends is a query the guard accepts (no unknown table or
//! column), and the constraint changes nothing about how rows are batched.

use std::path::{Path, PathBuf};

use sqlora_data::list_domains;
use sqlora_model::fetch::QWEN_CODER_0_5B;
use sqlora_model::generate::{generate_constrained, GenerateParams};
use sqlora_model::testing::{
    named_real_model_f32 as named_real_model, real_model_f32 as real_model,
};
use sqlora_model::LoadedModel;
use sqlora_sql::exec::ReadOnlyDb;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::{
    predict, Constrainer, PredictOptions, Prediction, PromptBuilder, Question, ANSWER_PRIME,
};

/// The first `n` test questions of each named bundled domain, with their built databases.
fn questions(out: &Path, domains: &[&str], n: usize) -> Vec<(String, String, String, PathBuf)> {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let mut qs = Vec::new();
    for d in list_domains(&datasets).unwrap() {
        if !domains.contains(&d.name.as_str()) {
            continue;
        }
        let built = sqlora_data::build_domain(&d, out, 1).unwrap();
        for e in d.split("test").unwrap().into_iter().take(n) {
            qs.push((e.id, d.name.clone(), e.question, built[0].path.clone()));
        }
    }
    qs
}

const MAX_NEW: usize = 96;

fn run(
    m: &LoadedModel,
    qs: &[(String, String, String, PathBuf)],
    constrain: bool,
    batch_size: usize,
) -> Vec<Prediction> {
    let questions: Vec<Question> = qs
        .iter()
        .map(|(id, db, q, p)| Question::new(id, db, q, p.clone()))
        .collect();
    let opts = PredictOptions {
        batch_size,
        max_new_tokens: MAX_NEW,
        constrain: constrain.then(|| Constrainer::new(m)),
        // The constraint alone: no beam-search rescue of failed answers.
        fallback: 0,
        ..PredictOptions::default()
    };
    predict(m, None, &questions, &opts, None).unwrap()
}

/// Every constrained answer that is a complete statement passes the guard's schema checks;
/// returns (guard-valid constrained, guard-valid free) counts.
fn check(m: &LoadedModel, domains: &[&str], n: usize) -> (usize, usize) {
    let out = tempfile::tempdir().unwrap();
    let qs = questions(out.path(), domains, n);
    let free = run(m, &qs, false, 8);
    let constrained = run(m, &qs, true, 8);
    let (mut ok_c, mut ok_f) = (0, 0);
    for ((q, f), c) in qs.iter().zip(&free).zip(&constrained) {
        let db = ReadOnlyDb::open(&q.3).unwrap();
        ok_f += db.check(&f.sql).is_ok() as usize;
        match db.check(&c.sql) {
            Ok(_) => ok_c += 1,
            // Only a statement cut by the token budget (unfinished, so its last name may be
            // a prefix) may be refused.
            Err(e) => assert!(
                c.new_tokens >= MAX_NEW,
                "{}: finished constrained answer {:?} refused: {e:?}",
                q.0,
                c.sql
            ),
        }
    }
    eprintln!(
        "guard-valid answers: constrained {ok_c}/{n_q}, free {ok_f}/{n_q}",
        n_q = qs.len()
    );
    (ok_c, ok_f)
}

#[test]
fn smollm2_constrained_answers_never_name_what_does_not_exist() {
    let Some(m) = real_model() else { return };
    let (c, f) = check(m, &["retail", "hr", "music"], 4);
    assert!(c >= f, "the constraint lost valid answers: {c} < {f}");
    // Batched and alone give the same constrained SQL.
    let out = tempfile::tempdir().unwrap();
    let qs = questions(out.path(), &["hr"], 3);
    let batched = run(m, &qs, true, 8);
    let alone = run(m, &qs, true, 1);
    for (b, a) in batched.iter().zip(&alone) {
        assert_eq!(b.sql, a.sql, "{}", b.id);
    }
}

#[test]
fn qwen_0_5b_constrained_answers_never_name_what_does_not_exist() {
    let Some(m) = named_real_model(QWEN_CODER_0_5B) else {
        return;
    };
    let (c, f) = check(m, &["hr", "flights"], 4);
    assert!(c >= f, "the constraint lost valid answers: {c} < {f}");
}

/// One batch of rows about different databases, each constrained by its own schema (and one
/// free row): every row generates exactly what it generates alone.
#[test]
fn a_batch_mixing_databases_gives_each_row_what_it_gives_alone() {
    let Some(m) = real_model() else { return };
    let out = tempfile::tempdir().unwrap();
    let qs = questions(out.path(), &["retail", "hr", "flights"], 2);
    let pb = PromptBuilder::builtin();
    let constrainer = Constrainer::new(m);
    let mut prompts = Vec::new();
    let mut schemas = Vec::new();
    for (_, _, q, path) in &qs {
        let schema = Schema::introspect(path).unwrap();
        let text = pb.prompt(m, &schema, q, true).unwrap();
        prompts.push(m.tokenizer.encode(&text, false).unwrap());
        schemas.push(constrainer.for_schema(&schema, true));
    }
    let params = GenerateParams {
        max_new_tokens: 40,
        ..GenerateParams::default()
    };
    // The last row stays free.
    let rows = |idx: &[usize]| {
        idx.iter()
            .map(|&i| (i + 1 < qs.len()).then(|| schemas[i].row().unwrap()))
            .collect::<Vec<_>>()
    };
    let all: Vec<usize> = (0..qs.len()).collect();
    let batch: Vec<Vec<u32>> = all.iter().map(|&i| prompts[i].clone()).collect();
    let together = m
        .with_token_info(|info| {
            generate_constrained(&m.model, info, &batch, &params, None, rows(&all))
        })
        .unwrap();
    for i in all {
        let alone = m
            .with_token_info(|info| {
                generate_constrained(
                    &m.model,
                    info,
                    &[prompts[i].clone()],
                    &params,
                    None,
                    rows(&[i]),
                )
            })
            .unwrap();
        assert_eq!(together[i].tokens, alone[0].tokens, "row {i} ({})", qs[i].0);
        if i + 1 < qs.len() {
            let text = format!("{ANSWER_PRIME}{}", together[i].text);
            assert!(
                !text.contains("```"),
                "a constrained row left SQL: {text:?}"
            );
        }
    }
}
