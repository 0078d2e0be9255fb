//! Databases, prompts and execution-guided answers.
//!
//! Prompts are built exactly as `sqlora ask` builds them: the bundled prompt templates
//! ([`PromptBuilder::builtin`]), rendered with the model's own chat template, and the
//! assistant's answer primed with [`PRIME`]. Every candidate goes through the guard and runs
//! read-only ([`ReadOnlyDb::execute`]); the first that executes is the answer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value as Json};
use sqlora_data::prompt::{extract_sql, ChatMessage, PromptBuilder};
use sqlora_model::chat::Message;
use sqlora_model::LoadedModel;
use sqlora_sql::exec::{ExecError, ExecLimits, ReadOnlyDb, Value};
use sqlora_sql::schema::Schema;

use crate::error::{Result, ServeError};
use crate::metrics::Metrics;

/// The start of every answer: the base model otherwise tends to answer in prose, and every
/// bundled gold query (the adapters' training targets) starts with it.
pub const PRIME: &str = "SELECT";

/// A database the service answers questions about.
pub struct Database {
    /// Its name in requests (`database`).
    pub name: String,
    /// The SQLite file.
    pub path: PathBuf,
    /// Its schema.
    pub schema: Schema,
    db: Mutex<ReadOnlyDb>,
    /// Token ids every prompt about this database starts with.
    pub prefix_tokens: Vec<u32>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("prefix_tokens", &self.prefix_tokens.len())
            .finish_non_exhaustive()
    }
}

/// Renders chat messages with the model's own template (plain paragraphs when it has none),
/// with the generation prompt for the assistant's turn.
pub fn render_chat(model: &LoadedModel, messages: &[ChatMessage]) -> Result<String> {
    let msgs: Vec<Message> = messages
        .iter()
        .map(|c| Message::new(c.role.clone(), c.content.clone()))
        .collect();
    match &model.chat_template {
        Some(t) => Ok(t.render(&msgs, true)?),
        None => Ok(msgs
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
            + "\n"),
    }
}

/// The full prompt text for `question` about `schema` (primed with [`PRIME`]).
pub fn question_prompt(
    model: &LoadedModel,
    builder: &PromptBuilder,
    schema: &Schema,
    question: &str,
) -> Result<String> {
    let messages = builder
        .messages(question, schema)
        .map_err(|e| ServeError::Internal(format!("prompt template: {e}")))?;
    Ok(render_chat(model, &messages)? + PRIME)
}

/// The token ids shared by every prompt about `schema`: the text common to two prompts with
/// different questions, tokenized, minus its last token (a token may merge across the
/// boundary; requests check that their own ids start with these before reusing them).
pub fn prefix_tokens(
    model: &LoadedModel,
    builder: &PromptBuilder,
    schema: &Schema,
) -> Result<Vec<u32>> {
    let a = question_prompt(model, builder, schema, "How many rows are there?")?;
    let b = question_prompt(model, builder, schema, "Which one is the largest?")?;
    let common = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let mut ids = model.tokenizer.encode(&a[..common], false)?;
    ids.pop();
    Ok(ids)
}

impl Database {
    /// Opens `path` read-only, introspects it and computes its prompt prefix.
    pub fn open(
        name: &str,
        path: &Path,
        model: &LoadedModel,
        builder: &PromptBuilder,
    ) -> Result<Database> {
        let db = ReadOnlyDb::open(path).map_err(|e| ServeError::Database {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let schema = db.guard().schema().clone();
        let prefix_tokens = prefix_tokens(model, builder, &schema)?;
        Ok(Database {
            name: name.to_string(),
            path: path.to_path_buf(),
            schema,
            db: Mutex::new(db),
            prefix_tokens,
        })
    }

    /// Runs `f` with the database connection (one query at a time per database).
    pub fn with_db<T>(&self, f: impl FnOnce(&ReadOnlyDb) -> T) -> T {
        let g = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&g)
    }
}

/// One candidate that did not make it, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The SQL extracted from the candidate.
    pub sql: String,
    /// The guard's refusal (code, message, position, suggestion) or the execution error
    /// (code, message).
    pub error: Json,
}

/// The outcome of trying the candidates in order.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The chosen SQL (the first candidate's when none was valid).
    pub sql: String,
    /// True when `sql` passed the guard (and executed, when execution was asked for).
    pub valid: bool,
    /// Why the last candidate failed, when none was valid.
    pub error: Option<Json>,
    /// Result columns.
    pub columns: Vec<String>,
    /// Result rows.
    pub rows: Vec<Vec<Value>>,
    /// True when the row or byte budget cut the result.
    pub truncated: bool,
    /// The candidates that failed, in order.
    pub attempts: Vec<Attempt>,
    /// Time spent in the guard and SQLite.
    pub execute_ms: f64,
}

fn error_json(e: &ExecError) -> Json {
    match e {
        ExecError::Guard(g) => serde_json::to_value(g)
            .unwrap_or_else(|_| json!({"code": g.code.as_str(), "message": g.message})),
        other => json!({"code": other.code(), "message": other.to_string()}),
    }
}

/// Tries each generated text (continuations of [`PRIME`]) in order: extracts its SQL, checks it
/// with the guard and, when `execute`, runs it under `limits`; returns the first that passes.
/// Nothing the guard refuses is ever run.
pub fn answer(
    db: &ReadOnlyDb,
    texts: &[String],
    execute: bool,
    limits: &ExecLimits,
    metrics: Option<&Metrics>,
) -> Answer {
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    for text in texts {
        let sql = extract_sql(&format!("{PRIME}{text}"));
        let outcome = if execute {
            db.execute(&sql, limits).map(Some)
        } else {
            db.check(&sql).map(|_| None).map_err(ExecError::Guard)
        };
        match outcome {
            Ok(res) => {
                let (columns, rows, truncated) = match res {
                    Some(r) => (r.columns, r.rows, r.truncated),
                    None => (Vec::new(), Vec::new(), false),
                };
                return Answer {
                    sql,
                    valid: true,
                    error: None,
                    columns,
                    rows,
                    truncated,
                    attempts,
                    execute_ms: t0.elapsed().as_secs_f64() * 1e3,
                };
            }
            Err(e) => {
                if let Some(m) = metrics {
                    match &e {
                        ExecError::Guard(g) => m.inc(
                            "sqlora_guard_rejections_total",
                            &[("reason", g.code.as_str())],
                        ),
                        other => m.inc("sqlora_execution_errors_total", &[("kind", other.code())]),
                    }
                }
                attempts.push(Attempt {
                    sql,
                    error: error_json(&e),
                });
            }
        }
    }
    Answer {
        sql: attempts.first().map(|a| a.sql.clone()).unwrap_or_default(),
        valid: false,
        error: attempts.last().map(|a| a.error.clone()),
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
        attempts,
        execute_ms: t0.elapsed().as_secs_f64() * 1e3,
    }
}
