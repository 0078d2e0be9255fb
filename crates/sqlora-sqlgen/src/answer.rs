//! Execution-guided answers: generated candidates go through SQL extraction, the guard and
//! the read-only executor ([`answer`]). With [`Selection::Vote`] (the default) every candidate
//! that passes is run and the answer is the one whose result most candidates agree on
//! (execution-based self-consistency; ties go to the best-ranked candidate), with
//! [`Selection::FirstValid`] the first that passes; either way every candidate is reported
//! with its outcome and its votes. [`ask`] is the whole pipeline for one question with a
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
use sqlora_sql::exec::{ExecError, ExecLimits, QueryResult, ReadOnlyDb, Value};

use crate::constrain::{Constrainer, SchemaConstraints};
use crate::error::Result;
use crate::prompt::{primed_answer, PromptBuilder};
use crate::retrieve::{copied_value, foreign_values, FewShot, Shot};
use crate::sql::answer_sql;

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
    /// Every candidate looked at, in the order generated (best first), with its outcome and
    /// its votes (with [`Selection::FirstValid`] those after the chosen one are not looked at).
    pub candidates: Vec<Ballot>,
    /// Time spent in the guard and SQLite.
    pub execute_ms: f64,
    /// The foreign value ([`AnswerOptions::foreign_values`]) the chosen SQL holds, when every
    /// valid candidate held one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied: Option<String>,
}

/// One candidate's outcome in [`answer`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ballot {
    /// The SQL extracted from the candidate.
    pub sql: String,
    /// True when it passed the guard (and executed, when execution was asked for).
    pub valid: bool,
    /// Candidates (this one included) whose result equals this one's ([`result_key`]); 0 for
    /// an invalid candidate.
    pub votes: usize,
    /// True for the candidate whose SQL is the answer.
    pub chosen: bool,
    /// Rows its result has (valid candidates that ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Why it failed (invalid candidates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Json>,
    /// The foreign value it holds, if any ([`AnswerOptions::foreign_values`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied: Option<String>,
}

/// How [`answer`] chooses among several candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// Run every candidate the guard accepts and answer with the result most of them agree on
    /// (equal [`result_key`]s); among equally many votes the group of the best-ranked
    /// candidate wins, and the group's best-ranked candidate is the answer's SQL. Without
    /// execution, candidates agree when their SQL is the same text.
    #[default]
    Vote,
    /// The first candidate the guard accepts (and that runs) is the answer.
    FirstValid,
}

/// What two results must share to count as the same answer in a vote: the number of
/// columns and the multiset of rows (row order and column names ignored, as the test-suite
/// evaluator ignores order without ORDER BY), reals compared to 12 significant digits, and
/// whether a budget cut the result.
pub fn result_key(r: &QueryResult) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "N".to_string(),
        Value::Integer(i) => format!("I{i}"),
        // Whole reals compare equal to integers (SUM over REALs vs COUNT-like results).
        Value::Real(f) if f.fract() == 0.0 && f.abs() < 9e15 => format!("I{}", *f as i64),
        Value::Real(f) => format!("R{f:.11e}"),
        Value::Text(t) => format!("T{}:{t}", t.len()),
        Value::Blob(b) => format!("B{b:?}"),
    };
    let mut rows: Vec<String> = r
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect::<Vec<_>>().join("\u{1f}"))
        .collect();
    rows.sort_unstable();
    format!(
        "{}|{}|{}",
        r.columns.len(),
        r.truncated,
        rows.join("\u{1e}")
    )
}

/// How [`answer`] treats the candidates.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// The candidates are continuations of the answer prime (default true): it is put back in
    /// front of each before its SQL is extracted.
    pub primed: bool,
    /// Run the first candidate the guard accepts (default true); otherwise only check it.
    pub execute: bool,
    /// Time, row and byte budgets of the execution (of each candidate run).
    pub limits: ExecLimits,
    /// How the answer is chosen among several candidates (default [`Selection::Vote`]).
    pub select: Selection,
    /// Entity values the retrieved examples name and the question does not
    /// ([`crate::retrieve::foreign_values`]; default none). A candidate that holds one most
    /// likely copied it from an example: a valid candidate without one is preferred, and a
    /// greedy answer with one falls back to beam search like a failed one ([`needs_fallback`]).
    pub foreign_values: Vec<String>,
}

impl Default for AnswerOptions {
    fn default() -> Self {
        AnswerOptions {
            primed: true,
            execute: true,
            limits: ExecLimits::default(),
            select: Selection::default(),
            foreign_values: Vec::new(),
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

/// Chooses the answer among generated texts (best first): extracts each one's SQL (after the
/// prime, when `opts.primed`), checks it with the guard and, when `opts.execute`, runs it under
/// `opts.limits`; then picks by `opts.select` ([`Selection`]). `on_failure` sees every refusal
/// or execution error (the server counts them). Nothing the guard refuses is ever run.
pub fn answer(
    db: &ReadOnlyDb,
    generated: &[String],
    opts: &AnswerOptions,
    mut on_failure: impl FnMut(&ExecError),
) -> Answer {
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    let mut ballots: Vec<Ballot> = Vec::new();
    // (vote key, result) of each valid candidate, by ballot index.
    let mut results: Vec<Option<(String, Option<QueryResult>)>> = Vec::new();
    for text in generated {
        let sql = answer_sql(&primed_answer(opts.primed, text), db.guard().schema());
        let copied = copied_value(&sql, &opts.foreign_values);
        let outcome = if opts.execute {
            db.execute(&sql, &opts.limits).map(Some)
        } else {
            db.check(&sql).map(|_| None).map_err(ExecError::Guard)
        };
        match outcome {
            Ok(res) => {
                let key = match &res {
                    Some(r) => result_key(r),
                    None => format!("sql:{sql}"),
                };
                ballots.push(Ballot {
                    sql,
                    valid: true,
                    votes: 0,
                    chosen: false,
                    rows: res.as_ref().map(|r| r.rows.len()),
                    error: None,
                    copied: copied.clone(),
                });
                results.push(Some((key, res)));
                if opts.select == Selection::FirstValid && copied.is_none() {
                    break;
                }
            }
            Err(e) => {
                on_failure(&e);
                let error = error_json(&e);
                attempts.push(Attempt {
                    sql: sql.clone(),
                    error: error.clone(),
                });
                ballots.push(Ballot {
                    sql,
                    valid: false,
                    votes: 0,
                    chosen: false,
                    rows: None,
                    error: Some(error),
                    copied,
                });
                results.push(None);
            }
        }
    }
    // Votes: how many valid candidates share each one's key.
    for i in 0..ballots.len() {
        if let Some((key, _)) = &results[i] {
            ballots[i].votes = results
                .iter()
                .flatten()
                .filter(|(other, _)| other == key)
                .count();
        }
    }
    // The most votes; ties to the earliest (best-ranked) candidate, which is also the first
    // of its group. Candidates without a copied value first: one that holds one wins only
    // when every valid candidate does.
    let clean = ballots.iter().any(|b| b.valid && b.copied.is_none());
    let winner = (0..ballots.len())
        .filter(|&i| ballots[i].valid && (!clean || ballots[i].copied.is_none()))
        .max_by(|&a, &b| ballots[a].votes.cmp(&ballots[b].votes).then(b.cmp(&a)));
    let execute_ms = t0.elapsed().as_secs_f64() * 1e3;
    match winner {
        Some(w) => {
            ballots[w].chosen = true;
            let res = results[w].take().and_then(|(_, r)| r);
            let (columns, rows, truncated) = match res {
                Some(r) => (r.columns, r.rows, r.truncated),
                None => (Vec::new(), Vec::new(), false),
            };
            Answer {
                sql: ballots[w].sql.clone(),
                valid: true,
                error: None,
                columns,
                rows,
                truncated,
                attempts,
                copied: ballots[w].copied.clone(),
                candidates: ballots,
                execute_ms,
            }
        }
        None => {
            if let Some(b) = ballots.first_mut() {
                b.chosen = true;
            }
            Answer {
                sql: attempts.first().map(|a| a.sql.clone()).unwrap_or_default(),
                valid: false,
                error: attempts.last().map(|a| a.error.clone()),
                columns: Vec::new(),
                rows: Vec::new(),
                truncated: false,
                attempts,
                candidates: ballots,
                execute_ms,
                copied: None,
            }
        }
    }
}

/// Beams of the fallback by default: when the one greedy answer fails the guard or SQLite,
/// this many beam-search candidates are generated and the first that passes is the answer
/// (see [`with_fallback`]). Chosen by measurement (EVALUATION.md); 0 turns it off.
pub const DEFAULT_FALLBACK: usize = 4;

/// True when a request for `candidates` should fall back to `fallback` beams after `first`
/// (its answer from those candidates): only a single greedy candidate that failed or holds a
/// copied value ([`AnswerOptions::foreign_values`]), and only when the fallback asks for more
/// than one beam.
pub fn needs_fallback(first: &Answer, candidates: usize, fallback: usize) -> bool {
    (!first.valid || first.copied.is_some()) && candidates <= 1 && fallback > 1
}

/// The answer after a fallback: `retry`'s outcome (chosen among beam candidates with
/// [`Selection::FirstValid`]) when it is valid and holds no copied value, or is valid where
/// `first` is not; else `first`'s. Either way every attempt and every candidate of both, the
/// greedy one first, so a client sees what was tried.
pub fn with_fallback(first: Answer, retry: Answer) -> Answer {
    let take_retry = retry.valid && (retry.copied.is_none() || !first.valid);
    let mut attempts = first.attempts;
    attempts.extend(retry.attempts);
    let mut candidates = first.candidates;
    let execute_ms = first.execute_ms + retry.execute_ms;
    if take_retry {
        for b in &mut candidates {
            b.chosen = false;
        }
        candidates.extend(retry.candidates);
        Answer {
            attempts,
            candidates,
            execute_ms,
            ..retry
        }
    } else {
        candidates.extend(
            retry
                .candidates
                .into_iter()
                .map(|b| Ballot { chosen: false, ..b }),
        );
        Answer {
            attempts,
            candidates,
            execute_ms,
            ..first
        }
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
    /// Beams to try when the single greedy candidate fails the guard or SQLite (default
    /// [`DEFAULT_FALLBACK`]; 0 or 1: none), see [`with_fallback`].
    pub fallback: usize,
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
            fallback: DEFAULT_FALLBACK,
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

/// The prompt [`ask`] sends for `question` (the chat template applied, the answer primed) and
/// the retrieved examples it shows: what a peer server (vLLM, LoRAX) must be sent to answer as
/// sqlora does.
pub fn ask_prompt(
    model: &LoadedModel,
    db: &ReadOnlyDb,
    question: &str,
    opts: &AskOptions,
) -> Result<(String, Vec<Shot>)> {
    let examples = match &opts.examples {
        Some(f) => {
            f.check_templates(&opts.prompts)?;
            f.for_question(question, None)
        }
        None => Vec::new(),
    };
    let prompt = opts.prompts.prompt_with_examples(
        model,
        db.guard().schema(),
        question,
        &examples,
        opts.answer.primed,
    )?;
    Ok((prompt, examples))
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
    let (prompt, examples) = ask_prompt(model, db, question, opts)?;
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
    let opts_answer = AnswerOptions {
        foreign_values: foreign_values(question, &examples),
        ..opts.answer.clone()
    };
    let mut answer = answer(db, &texts, &opts_answer, |_| {});
    if needs_fallback(&answer, opts.candidates, opts.fallback) {
        let texts = candidates(
            model,
            adapter,
            &ids,
            opts.fallback,
            &params,
            constraint.as_ref(),
        )?;
        let first_valid = AnswerOptions {
            select: Selection::FirstValid,
            ..opts_answer
        };
        let retry = self::answer(db, &texts, &first_valid, |_| {});
        answer = with_fallback(answer, retry);
    }
    let generate_ms = t0.elapsed().as_secs_f64() * 1e3 - answer.execute_ms;
    Ok(Asked {
        answer,
        generate_ms,
        examples,
    })
}
