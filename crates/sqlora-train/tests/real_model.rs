//! With the real model's tokenizer and chat template: tokenizing prompt and answer separately
//! gives exactly the tokens of the whole text, so the loss positions are the answer's bytes.
//! Needs the model (`SQLORA_MODEL`, else the fetched default); skips without it unless
//! `SQLORA_REQUIRE_MODEL=1`.

use std::path::Path;

use candle_core::Device;
use sqlora_data::{build_domain, Domain};
use sqlora_model::testing::real_model_path as model_path;
use sqlora_sql::Schema;
use sqlora_sqlgen::PromptBuilder;
use sqlora_train::batch::{render, tokenize};

#[test]
fn answer_tokens_match_the_joint_tokenization_on_a_real_domain() {
    let Some(path) = model_path() else { return };
    let m = sqlora_model::load(&path, &Device::Cpu).unwrap();
    let chat = m.chat_template.as_ref().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let domain = Domain::open(&root.join("library")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = build_domain(&domain, dir.path(), 0).unwrap();
    let schema = Schema::introspect(&built[0].path).unwrap();
    let builder = PromptBuilder::builtin();
    let end = m.tokenizer.token_to_id("<|im_end|>").unwrap();
    let examples = domain.split("train").unwrap();
    assert!(examples.len() >= 20);
    for ex in examples.iter().take(60) {
        let t = builder
            .training_example(&ex.question, &schema, &ex.sql)
            .unwrap();
        let r = render(&t, chat, "<|im_end|>").unwrap();
        let tok = tokenize(&r, &m.tokenizer, 100_000).unwrap();
        let joint = m.tokenizer.encode(&r.text, false).unwrap();
        assert_eq!(tok.ids, joint, "{}: split tokenization differs", ex.id);
        let answer = &tok.ids[tok.answer_start..];
        assert_eq!(*answer.last().unwrap(), end);
        let text = m
            .tokenizer
            .decode(&answer[..answer.len() - 1], false)
            .unwrap();
        assert_eq!(text, t.answer, "{}", ex.id);
        // The prompt ends with the assistant turn's header.
        let prompt = m
            .tokenizer
            .decode(&tok.ids[..tok.answer_start], false)
            .unwrap();
        assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");
    }
}
