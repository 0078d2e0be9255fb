//! Rendering with a chat template and tokenizing: the loss covers exactly the answer and the
//! end marker; long prompts lose their start, answers are never cut.

mod common;

use sqlora_model::chat::ChatTemplate;
use sqlora_sqlgen::{ChatMessage, TrainingExample};
use sqlora_train::batch::{dataset_hash, render, tokenize};
use sqlora_train::TrainError;

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn example(answer: &str) -> TrainingExample {
    TrainingExample {
        messages: vec![
            ChatMessage::new("system", "w10 w11"),
            ChatMessage::new("user", "w20 w21 w22"),
        ],
        answer: answer.to_string(),
    }
}

#[test]
fn answer_tokens_are_exactly_the_answer_and_end_marker() {
    let dir = tempfile::tempdir().unwrap();
    let tok = common::tiny_tokenizer(dir.path());
    let chat = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
    let r = render(&example("w40 w41 w42"), &chat, "<|im_end|>").unwrap();
    assert_eq!(&r.text[r.answer_span.clone()], "w40 w41 w42<|im_end|>");
    let t = tokenize(&r, &tok, 64).unwrap();
    assert_eq!(&t.ids[t.answer_start..], &[40, 41, 42, 1]);
    // The prompt: im_start system(unk) w10 w11 im_end im_start user(unk) w20 w21 w22 im_end
    // im_start assistant(unk).
    assert_eq!(
        &t.ids[..t.answer_start],
        &[2, 0, 10, 11, 1, 2, 0, 20, 21, 22, 1, 2, 0]
    );
    assert_eq!(t.answer_tokens(), 4);
}

#[test]
fn long_prompts_lose_their_start_and_long_answers_fail() {
    let dir = tempfile::tempdir().unwrap();
    let tok = common::tiny_tokenizer(dir.path());
    let chat = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
    let r = render(&example("w40 w41 w42"), &chat, "<|im_end|>").unwrap();
    let full = tokenize(&r, &tok, 64).unwrap();
    let cut = tokenize(&r, &tok, 8).unwrap();
    assert_eq!(cut.len(), 8);
    assert_eq!(cut.answer_tokens(), 4);
    assert_eq!(cut.ids[..], full.ids[full.len() - 8..]);
    assert!(matches!(tokenize(&r, &tok, 4), Err(TrainError::Data(_))));
    // Different data, different hash; same data, same hash.
    let r2 = render(&example("w40 w41"), &chat, "<|im_end|>").unwrap();
    let again = render(&example("w40 w41 w42"), &chat, "<|im_end|>").unwrap();
    let h = dataset_hash(std::slice::from_ref(&r));
    assert_eq!(h.len(), 64);
    assert_eq!(h, dataset_hash(&[again]));
    assert_ne!(h, dataset_hash(&[r2]));
}
