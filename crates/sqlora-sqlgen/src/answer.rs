//! Execution-guided answers: generated candidates go, in order, through SQL extraction, the
//! guard and the read-only executor; the first that passes is the answer, and every failed
//! attempt is reported ([`answer`]). [`ask`] is the whole pipeline for one question with a
//! loaded model: prompt, candidates ([`candidates`]), answer.
//!
//! Nothing the guard refuses is ever run: execution goes through [`ReadOnlyDb::execute`],
//! which checks first.

use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value as Json};
use sqlora_model::generate::{
    generate_constrained, generate_with_adapters, n_best_constrained, GenerateParams, Generation,
};
use sqlora_model::lora::{AdapterBatch, LoraAdapter};
use sqlora_model::LoadedModel;
use sqlora_sql::exec::{ExecError, ExecLimits, ReadOnlyDb, Value};

use crate::constrain::{Constrainer, SchemaConstraints};
use crate::error::Result;
use crate::prompt::{primed_answer, PromptBuilder};
use crate::retrieve::{FewShot, Shot};
use crate::sql::extract_sql;

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

/// How [`answer`] treats the candidates.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// The candidates are continuations of the answer prime (default true): it is put back in
    /// front of each before its SQL is extracted.
    pub primed: bool,
    /// Run the first candidate the guard accepts (default true); otherwise only check it.
    pub execute: bool,
    /// Time, row and byte budgets of the execution.
    pub limits: ExecLimits,
}

impl Default for AnswerOptions {
    fn default() -> Self {
        AnswerOptions {
            primed: true,
            execute: true,
            limits: ExecLimits::default(),
        }
    }
}

/// An execution failure as JSON: the guard's refusal as it serializes (code, message,
/// position, suggestion), any other error as `{code, message}`.
pub fn error_json(e: &ExecError) -> Json {
    match e {
        ExecError::Guard(g) => serde_json::to_value(g)
            .unwrap_or_else(|_| json!({"code": g.code.as_str(), "message": g.message})),
        other => json!({"code": other.code(), "message": other.to_string()}),
    }
}

/// Tries each generated text in order: extracts its SQL (after the prime, when
/// `opts.primed`), checks it with the guard and, when `opts.execute`, runs it under
/// `opts.limits`; returns the first that passes. `on_failure` sees every refusal or execution
/// error (the server counts them). Nothing the guard refuses is ever run.
pub fn answer(
    db: &ReadOnlyDb,
    generated: &[String],
    opts: &AnswerOptions,
    mut on_failure: impl FnMut(&ExecError),
) -> Answer {
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    for text in generated {
        let sql = extract_sql(&primed_answer(opts.primed, text));
        let outcome = if opts.execute {
            db.execute(&sql, &opts.limits).map(Some)
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
                on_failure(&e);
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

/// Batched generation with one adapter (or none) for every row.
pub fn generate(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
) -> Result<Vec<Generation>> {
    let batch = adapter.map(AdapterBatch::single);
    Ok(model.with_token_info(|info| {
        generate_with_adapters(&model.model, info, prompts, params, batch.as_ref())
    })?)
}

/// `n` candidate continuations of `prompt`, best first: the greedy one for `n` ≤ 1, else beam
/// search's n-best; each constrained to SQL over the schema by `constraint` (the beams fork
/// it), or free when `None`.
pub fn candidates(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    prompt: &[u32],
    n: usize,
    params: &GenerateParams,
    constraint: Option<&SchemaConstraints>,
) -> Result<Vec<String>> {
    let batch = adapter.map(AdapterBatch::single);
    let row = constraint.map(SchemaConstraints::row).transpose()?;
    if n <= 1 {
        let gens = model.with_token_info(|info| {
            generate_constrained(
                &model.model,
                info,
                &[prompt.to_vec()],
                params,
                batch.as_ref(),
                vec![row],
            )
        })?;
        return Ok(gens.into_iter().map(|g| g.text).collect());
    }
    let cands = model.with_token_info(|info| {
        n_best_constrained(&model.model, info, prompt, n, params, batch.as_ref(), row)
    })?;
    Ok(cands.into_iter().map(|c| c.text).collect())
}

/// How [`ask`] answers a question.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// The prompt templates (default: the bundled ones).
    pub prompts: PromptBuilder,
    /// Candidates to try in order (beam search when more than 1; default 1).
    pub candidates: usize,
    /// Most new tokens per candidate (default 128).
    pub max_new_tokens: usize,
    /// Priming, execution and budgets (the prompt is primed when `answer.primed`).
    pub answer: AnswerOptions,
    /// Constrain the answer to SQL over the database's schema (default: none; callers make
    /// one per model with [`Constrainer::new`], `--no-constrain` leaves it out).
    pub constrain: Option<Constrainer>,
    /// Retrieved examples in the prompt (default: none).
    pub examples: Option<FewShot>,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            prompts: PromptBuilder::builtin(),
            candidates: 1,
            max_new_tokens: 128,
            answer: AnswerOptions::default(),
            constrain: None,
            examples: None,
        }
    }
}

/// What [`ask`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    /// The answer: SQL, rows, failed attempts.
    pub answer: Answer,
    /// Time spent generating the candidates.
    pub generate_ms: f64,
    /// The examples shown in the prompt, most similar first.
    pub examples: Vec<Shot>,
}

/// The whole pipeline for one question about `db`, with a loaded model and `adapter` (or
/// none): the prompt ([`PromptBuilder::prompt`]), the candidates ([`candidates`]) and the
/// guarded answer ([`answer`]).
pub fn ask(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    db: &ReadOnlyDb,
    question: &str,
    opts: &AskOptions,
) -> Result<Asked> {
    let schema = db.guard().schema();
    let examples = match &opts.examples {
        Some(f) => {
            f.check_templates(&opts.prompts)?;
            f.for_question(question, None)
        }
        None => Vec::new(),
    };
    let prompt = opts.prompts.prompt_with_examples(
        model,
        schema,
        question,
        &examples,
        opts.answer.primed,
    )?;
    let ids = model.tokenizer.encode(&prompt, false)?;
    let params = GenerateParams {
        max_new_tokens: opts.max_new_tokens,
        ..GenerateParams::default()
    };
    let t0 = Instant::now();
    let constraint = opts
        .constrain
        .as_ref()
        .map(|c| c.for_schema(schema, opts.answer.primed));
    let texts = candidates(
        model,
        adapter,
        &ids,
        opts.candidates,
        &params,
        constraint.as_ref(),
    )?;
    let generate_ms = t0.elapsed().as_secs_f64() * 1e3;
    let answer = answer(db, &texts, &opts.answer, |_| {});
    Ok(Asked {
        answer,
        generate_ms,
        examples,
    })
}
