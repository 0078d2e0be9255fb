//! sqlora-sqlgen: the text-to-SQL pipeline, from a plain-English question about a SQLite
//! database to a checked, executed query. `sqlora ask`, `sqlora eval --base/--adapter`, the
//! trainer's dev-set EX and the server's `/v1/query` all go through it, so they agree on
//! every step.
//!
//! * [`prompt`] — chat messages from the `prompts/*.jinja` templates ([`PromptBuilder`]), the
//!   one chat renderer ([`render_chat`], the model's own template), the answer prime
//!   ([`ANSWER_PRIME`]), the full inference prompt ([`PromptBuilder::prompt`]) and the token
//!   prefix every prompt about a database shares ([`prefix_tokens`]); training examples with
//!   an answer span ([`TrainingExample`]).
//! * [`sql`] — SQL text through one quote-aware scanner: [`extract_sql`] from model output,
//!   [`statement_complete`] (where generation may stop) and [`one_line_sql`] for gold answers.
//! * [`answer`] — candidates → guard → read-only execution, first that passes wins
//!   ([`answer()`]); candidate generation ([`candidates`]) and the whole pipeline for one
//!   question ([`ask`]).
//! * [`constrain`] — schema-constrained decoding ([`Constrainer`], per database
//!   [`SchemaConstraints`]): every row's tokens keep the answer a valid prefix of one SQLite
//!   statement over the schema (`sqlora-constrain`).
//! * [`retrieve`] — few-shot examples: the (question, SQL) pairs of a training split most
//!   similar to the asked question (BM25, [`ExampleIndex`]), shown after the schema
//!   ([`FewShot`]), never the asked question itself.
//! * [`fit`] — wide schemas: a prompt over its token budget shows the key columns and the
//!   columns most relevant to the question ([`fit::ColumnRanking`]).
//! * [`predict`] — batch prediction with one prefix prefill per database ([`predict()`]).
//!
//! The crate builds on `sqlora-model` (the model knows nothing about SQL), `sqlora-sql`
//! (schema, guard, executor) and `sqlora-constrain` (the SQL recognizer); it knows nothing
//! about datasets.

pub mod answer;
pub mod constrain;
pub mod error;
pub mod fit;
pub mod predict;
pub mod prompt;
pub mod retrieve;
pub mod sql;

pub use answer::{
    answer, ask, ask_prompt, candidates, error_json, generate, needs_fallback, result_key,
    with_fallback, Answer, AnswerOptions, AskOptions, Asked, Attempt, Ballot, Selection,
    DEFAULT_FALLBACK,
};
pub use constrain::{Constrainer, SchemaConstraints};
pub use error::{Result, SqlgenError};
pub use predict::{predict, progress_bar, PredictOptions, Prediction, Question};
pub use prompt::{
    prefix_tokens, prime, primed_answer, render_chat, ChatMessage, PromptBuilder, RenderedExample,
    TrainingExample, ANSWER_PRIME, PROMPT_CONTEXT_SHARE,
};
pub use retrieve::{copied_value, foreign_values, ExampleIndex, FewShot, Shot};
pub use sql::{answer_sql, extract_sql, one_line_sql, statement_complete, string_literals};
