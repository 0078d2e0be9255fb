//! Retrieved examples with the real tokenizer and model: they come after the schema, so the
//! prompts of a database still share the whole schema as a token prefix (what the prefix
//! caches of `eval` and `serve` reuse), and batch prediction never shows a question its own
//! answer.

use std::path::Path;
use std::sync::Arc;

use sqlora_data::dataset::{Domain, Example};
use sqlora_model::LoadedModel;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::{
    predict, prefix_tokens, ExampleIndex, FewShot, PredictOptions, PromptBuilder, Question, Shot,
};

fn real_model() -> Option<LoadedModel> {
    let path = sqlora_model::testing::real_model_path()?;
    Some(sqlora_model::load(&path, &candle_core::Device::Cpu).unwrap())
}

fn shots(examples: &[Example]) -> Vec<Shot> {
    examples
        .iter()
        .map(|e| Shot::new(e.id.clone(), e.question.clone(), e.sql.clone()))
        .collect()
}

/// The retail domain, built into `out`: its domain, schema and SQLite file.
fn retail(out: &Path) -> (Domain, Schema, std::path::PathBuf) {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let d = Domain::open(&datasets.join("retail")).unwrap();
    let built = sqlora_data::build_domain(&d, out, 1).unwrap();
    let schema = Schema::introspect(&built[0].path).unwrap();
    (d, schema, built[0].path.clone())
}

#[test]
fn prompts_with_examples_share_the_whole_schema_as_a_token_prefix() {
    let Some(m) = real_model() else { return };
    let out = tempfile::tempdir().unwrap();
    let (d, schema, _) = retail(out.path());
    let few = FewShot::new(
        Arc::new(ExampleIndex::new(shots(&d.split("train").unwrap()))),
        3,
    );
    let dev = d.split("dev").unwrap();
    let pb = PromptBuilder::builtin();
    let prefix = prefix_tokens(&m, &pb, &schema).unwrap();
    let mut ids = Vec::new();
    for e in &dev[..2] {
        let ex = few.for_question(&e.question, Some(&e.id));
        assert_eq!(ex.len(), 3);
        let text = pb
            .prompt_with_examples(&m, &schema, &e.question, &ex, true)
            .unwrap();
        assert!(text.contains(&ex[0].question), "{text}");
        ids.push(m.tokenizer.encode(&text, false).unwrap());
    }
    let zero = pb.prompt(&m, &schema, &dev[0].question, true).unwrap();
    ids.push(m.tokenizer.encode(&zero, false).unwrap());
    // The server's cached prefix starts every prompt, with or without examples...
    for p in &ids {
        assert!(p.starts_with(&prefix));
    }
    // ... and it holds the whole schema: every table is in it.
    let shared = m.tokenizer.decode(&prefix, false).unwrap();
    for t in &schema.tables {
        assert!(shared.contains(&format!("\n{}(", t.name)), "{shared}");
    }
    // The longest common token prefix of two prompts with different examples (what `predict`
    // prefills once) is no shorter.
    let common = ids[0]
        .iter()
        .zip(&ids[1])
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common >= prefix.len(), "{common} < {}", prefix.len());
}

#[test]
fn prediction_never_retrieves_the_evaluated_question() {
    let Some(m) = real_model() else { return };
    let out = tempfile::tempdir().unwrap();
    let (d, _, db) = retail(out.path());
    let test = d.split("test").unwrap();
    let asked = &test[0];
    // A training split that also holds the test question, under another id and with other
    // capitals and punctuation, and an example with the test question's id.
    let mut train = shots(&d.split("train").unwrap());
    let leak = Shot::new(
        "leak",
        format!("{}!!", asked.question.to_uppercase()),
        asked.sql.clone(),
    );
    train.insert(0, leak);
    train.push(Shot::new(asked.id.clone(), "same id", "SELECT 1"));
    let index = Arc::new(ExampleIndex::new(train));
    // Plain retrieval ranks the copy first.
    assert_eq!(index.top_k(&asked.question, 1, |_| false), [0]);
    let opts = PredictOptions {
        max_new_tokens: 8,
        examples: Some(FewShot::new(index.clone(), 4)),
        ..PredictOptions::default()
    };
    let q = [Question::new(&asked.id, &asked.db_id, &asked.question, db)];
    let preds = predict(&m, None, &q, &opts, None).unwrap();
    let shown = &preds[0].examples;
    assert_eq!(shown.len(), 4);
    assert!(
        !shown.iter().any(|id| id == "leak" || id == &asked.id),
        "{shown:?}"
    );
    // What it shows are the next most similar training questions.
    let expected: Vec<String> = index
        .retrieve(&asked.question, 4, Some(&asked.id))
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(shown, &expected);
}
