//! Predictions for a set of questions with an already-loaded model (and adapter): the engine
//! behind `sqlora eval --base/--adapter` and the trainer's dev-set EX.
//!
//! Questions are grouped by database. Each prompt is built exactly as `sqlora ask` builds it
//! ([`PromptBuilder::prompt`]: the messages rendered with the model's chat template, then the
//! answer prime); the prompts of one database share the system + schema part, so its tokens
//! (the longest common token prefix of the group) are prefilled once and every batch of
//! questions starts from that KV cache ([`sqlora_model::prefix`]). Generation is greedy (a
//! prediction that fails the guard or SQLite falls back to beam search's first passing
//! candidate, [`PredictOptions::fallback`]), so the SQL is the one `ask` would print for the
//! same question.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlora_model::generate::{generate_constrained, GenerateParams};
use sqlora_model::lora::{AdapterBatch, LoraAdapter};
use sqlora_model::prefix::{
    common_prefix_len, generate_from_prefix_constrained, n_best_from_prefix_constrained,
    prefill_prefix_with_room,
};
use sqlora_model::LoadedModel;
use sqlora_sql::exec::ReadOnlyDb;
use sqlora_sql::schema::Schema;

use crate::answer::{
    answer, needs_fallback, with_fallback, AnswerOptions, Ballot, Selection, DEFAULT_FALLBACK,
};

use crate::constrain::Constrainer;
use crate::error::{Result, SqlgenError};
use crate::prompt::{primed_answer, PromptBuilder};
use crate::retrieve::{foreign_values, FewShot};
use crate::sql::{answer_sql, statement_complete};

/// How [`predict`] generates.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Questions generated together in one batch (default 8).
    pub batch_size: usize,
    /// Most new tokens per question (default 160).
    pub max_new_tokens: usize,
    /// Start the answer with [`ANSWER_PRIME`](crate::ANSWER_PRIME) (default true, as `ask`
    /// does).
    pub prime: bool,
    /// The prompt templates (default: the bundled ones).
    pub prompts: PromptBuilder,
    /// End a question's generation as soon as its SQL statement is over (a `;` or a blank
    /// line outside quotes, see [`statement_complete`]) instead of at EOS or `max_new_tokens`
    /// (default true). The extracted SQL is the same ([`crate::extract_sql`] cuts there anyway);
    /// what follows, e.g. a base model repeating itself, is never generated.
    pub stop_at_statement_end: bool,
    /// Constrain every answer to SQL over its database's schema (default: none; see
    /// [`Constrainer`]).
    pub constrain: Option<Constrainer>,
    /// Candidates per question (default 1: greedy). With more, each question gets beam
    /// search's n-best from the shared prefix, every candidate the guard accepts is run on
    /// the question's database, and the prediction is the vote's winner
    /// ([`answer`](crate::answer::answer) with [`Selection::Vote`]), as `/v1/query` answers
    /// with `candidates`.
    pub candidates: usize,
    /// Beams to try when a greedy prediction fails the guard or SQLite on its database
    /// (default [`DEFAULT_FALLBACK`]; 0 or 1: none): the first beam-search candidate that
    /// passes replaces it, as `ask` and `/v1/query` do ([`with_fallback`]).
    pub fallback: usize,
    /// Retrieved examples in every prompt (default: none). A question never gets itself: an
    /// example with its id or its words is left out ([`crate::ExampleIndex::retrieve`]).
    pub examples: Option<FewShot>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            batch_size: 8,
            max_new_tokens: 160,
            prime: true,
            prompts: PromptBuilder::builtin(),
            stop_at_statement_end: true,
            constrain: None,
            candidates: 1,
            fallback: DEFAULT_FALLBACK,
            examples: None,
        }
    }
}

/// One question to predict SQL for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question<'a> {
    /// Its id (e.g. the dataset example's).
    pub id: &'a str,
    /// The name of its database.
    pub db_id: &'a str,
    /// The question, in plain English.
    pub text: &'a str,
    /// The SQLite file whose schema goes into the prompt.
    pub db: PathBuf,
}

impl<'a> Question<'a> {
    /// Question `text` (id `id`) about the database `db_id`, whose SQLite file is `db`.
    pub fn new(id: &'a str, db_id: &'a str, text: &'a str, db: PathBuf) -> Self {
        Question {
            id,
            db_id,
            text,
            db,
        }
    }
}

/// One question's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The question's id.
    pub id: String,
    /// The question's database.
    pub db_id: String,
    /// The SQL of the answer ([`answer_sql`]: extracted, then requalified).
    pub sql: String,
    /// The answer as generated (with the prime in front when priming).
    pub raw: String,
    /// Tokens generated.
    pub new_tokens: usize,
    /// The ids of the examples shown in its prompt, most similar first (empty without
    /// [`PredictOptions::examples`]).
    pub examples: Vec<String>,
    /// Time spent on this question: its batch's wall time divided by the batch's size, plus
    /// its share of the database's prompt building and prefix prefill. Their sum over a run is
    /// the run's generation time.
    pub latency_ms: f64,
    /// With several candidates: each one, best first, with its outcome and votes (the chosen
    /// one's SQL is `sql`); empty for greedy predictions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Ballot>,
}

/// A progress bar for `n` questions, showing questions/s and the ETA.
pub fn progress_bar(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} questions  {per_sec}  eta {eta}  {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Generates a prediction for every question, in the order of `questions`.
///
/// `adapter` (already checked against the model, e.g. by `sqlora_model::peft::load_adapter`,
/// and possibly truncated) applies to every question. `progress`, when given, is advanced by
/// one per question (see [`progress_bar`]).
pub fn predict(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    questions: &[Question<'_>],
    opts: &PredictOptions,
    progress: Option<&ProgressBar>,
) -> Result<Vec<Prediction>> {
    if opts.batch_size == 0 {
        return Err(SqlgenError::Invalid(
            "the batch size must be at least 1".to_string(),
        ));
    }
    if let Some(f) = &opts.examples {
        f.check_templates(&opts.prompts)?;
    }
    // A trainable adapter (the trainer's) gets an inference copy: same values, no gradient
    // tracking, so the fused inference kernels apply.
    let frozen;
    let adapter = match adapter {
        Some(a) if !a.vars().is_empty() => {
            frozen = a.frozen()?;
            Some(&frozen)
        }
        other => other,
    };
    let batch = adapter.map(AdapterBatch::single);
    let params = GenerateParams {
        max_new_tokens: opts.max_new_tokens,
        ..GenerateParams::default()
    };
    let done = |text: &str| {
        opts.stop_at_statement_end && statement_complete(&primed_answer(opts.prime, text))
    };

    // Group by database, keeping first-seen order.
    let mut groups: BTreeMap<usize, (PathBuf, Vec<usize>)> = BTreeMap::new();
    let mut order: Vec<&PathBuf> = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let g = match order.iter().position(|p| **p == q.db) {
            Some(g) => g,
            None => {
                order.push(&q.db);
                order.len() - 1
            }
        };
        groups
            .entry(g)
            .or_insert_with(|| (q.db.clone(), Vec::new()))
            .1
            .push(i);
    }

    let mut out: Vec<Option<Prediction>> = vec![None; questions.len()];
    for (path, members) in groups.into_values() {
        let t_group = Instant::now();
        let schema = Schema::introspect(&path).map_err(|source| SqlgenError::Schema {
            path: path.clone(),
            source,
        })?;
        let constraints = opts
            .constrain
            .as_ref()
            .map(|c| c.for_schema(&schema, opts.prime));
        let mut prompts = Vec::with_capacity(members.len());
        let mut shown: Vec<Vec<String>> = Vec::with_capacity(members.len());
        let mut foreign: Vec<Vec<String>> = Vec::with_capacity(members.len());
        for &i in &members {
            let q = &questions[i];
            let shots = opts
                .examples
                .as_ref()
                .map(|f| f.for_question(q.text, Some(q.id)))
                .unwrap_or_default();
            let text = opts
                .prompts
                .prompt_with_examples(model, &schema, q.text, &shots, opts.prime)
                .map_err(|e| SqlgenError::question("building the prompt", q.id, e))?;
            foreign.push(foreign_values(q.text, &shots));
            shown.push(shots.into_iter().map(|s| s.id).collect());
            let ids = model
                .tokenizer
                .encode(&text, false)
                .map_err(|e| SqlgenError::question("tokenizing the prompt", q.id, e))?;
            if ids.is_empty() {
                return Err(SqlgenError::EmptyPrompt(q.id.to_string()));
            }
            prompts.push(ids);
        }
        // The shared prefix, leaving every suffix at least one token (0: nothing shared,
        // e.g. a chat template that starts with the question; then plain batches).
        let shortest = prompts.iter().map(Vec::len).min().unwrap_or(0);
        let p = common_prefix_len(&prompts).min(shortest.saturating_sub(1));
        let suffixes: Vec<Vec<u32>> = prompts.iter().map(|x| x[p..].to_vec()).collect();
        let longest = suffixes.iter().map(Vec::len).max().unwrap_or(0);
        let cache = if p > 0 {
            Some(
                prefill_prefix_with_room(
                    &model.model,
                    &prompts[0][..p],
                    batch.as_ref(),
                    longest + opts.max_new_tokens,
                )
                .map_err(|source| SqlgenError::Prefill {
                    path: path.clone(),
                    source,
                })?,
            )
        } else {
            None
        };
        // The prompt building and prefix prefill are shared by the group's questions.
        let shared_ms = t_group.elapsed().as_secs_f64() * 1e3 / members.len() as f64;
        // Beam search's n-best for member `k` from the shared prefix (or its whole prompt),
        // answered on the database with `select`.
        let beams = |k: usize, n: usize, select: Selection, db: &ReadOnlyDb| -> Result<_> {
            let constraint = constraints.as_ref().map(|c| c.row()).transpose()?;
            let cands = model.with_token_info(|info| match &cache {
                Some(cache) => n_best_from_prefix_constrained(
                    &model.model,
                    info,
                    cache,
                    &suffixes[k],
                    n,
                    &params,
                    batch.as_ref(),
                    constraint,
                ),
                None => sqlora_model::generate::n_best_constrained(
                    &model.model,
                    info,
                    &prompts[k],
                    n,
                    &params,
                    batch.as_ref(),
                    constraint,
                ),
            })?;
            let texts: Vec<String> = cands.iter().map(|c| c.text.clone()).collect();
            let opts_answer = AnswerOptions {
                primed: opts.prime,
                select,
                foreign_values: foreign[k].clone(),
                ..AnswerOptions::default()
            };
            let chosen = answer(db, &texts, &opts_answer, |_| {});
            let pick = chosen.candidates.iter().position(|b| b.chosen).unwrap_or(0);
            let raw = primed_answer(opts.prime, texts.get(pick).map_or("", |t| t));
            let tokens = cands.get(pick).map_or(0, |c| c.tokens.len());
            Ok((chosen, raw, tokens))
        };
        let open_db = || {
            ReadOnlyDb::open(&path).map_err(|source| SqlgenError::Exec {
                path: path.clone(),
                source,
            })
        };
        if opts.candidates > 1 {
            let db = open_db()?;
            for (k, &i) in members.iter().enumerate() {
                let t0 = Instant::now();
                let q = &questions[i];
                let (chosen, raw, new_tokens) = beams(k, opts.candidates, Selection::Vote, &db)?;
                out[i] = Some(Prediction {
                    id: q.id.to_string(),
                    db_id: q.db_id.to_string(),
                    sql: chosen.sql,
                    raw,
                    new_tokens,
                    examples: shown[k].clone(),
                    latency_ms: t0.elapsed().as_secs_f64() * 1e3 + shared_ms,
                    candidates: chosen.candidates,
                });
                if let Some(bar) = progress {
                    bar.inc(1);
                }
            }
            continue;
        }
        let db = if opts.fallback > 1 {
            Some(open_db()?)
        } else {
            None
        };
        let greedy = AnswerOptions {
            primed: opts.prime,
            ..AnswerOptions::default()
        };
        // Similar suffix lengths together: less padding (rows are independent).
        let mut by_len: Vec<usize> = (0..members.len()).collect();
        by_len.sort_by_key(|&k| suffixes[k].len());
        for chunk in by_len.chunks(opts.batch_size) {
            let t0 = Instant::now();
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&k| suffixes[k].clone()).collect();
            let constraints = match &constraints {
                Some(c) => c.rows(rows.len())?,
                None => Vec::new(),
            };
            let gens = model.with_token_info(|info| match &cache {
                Some(cache) => generate_from_prefix_constrained(
                    &model.model,
                    info,
                    cache,
                    &rows,
                    &params,
                    batch.as_ref(),
                    &done,
                    constraints,
                ),
                None => generate_constrained(
                    &model.model,
                    info,
                    &rows,
                    &params,
                    batch.as_ref(),
                    constraints,
                ),
            })?;
            let each_ms = t0.elapsed().as_secs_f64() * 1e3 / chunk.len() as f64;
            for (&k, g) in chunk.iter().zip(gens) {
                let i = members[k];
                let q = &questions[i];
                let raw = primed_answer(opts.prime, &g.text);
                let mut p = Prediction {
                    id: q.id.to_string(),
                    db_id: q.db_id.to_string(),
                    sql: answer_sql(&raw, &schema),
                    raw,
                    new_tokens: g.tokens.len(),
                    examples: shown[k].clone(),
                    latency_ms: each_ms + shared_ms,
                    candidates: Vec::new(),
                };
                if let Some(db) = &db {
                    let greedy = AnswerOptions {
                        foreign_values: foreign[k].clone(),
                        ..greedy.clone()
                    };
                    let first = answer(db, std::slice::from_ref(&g.text), &greedy, |_| {});
                    if needs_fallback(&first, 1, opts.fallback) {
                        let t1 = Instant::now();
                        let (retry, raw, new_tokens) =
                            beams(k, opts.fallback, Selection::FirstValid, db)?;
                        let first_sql = first.sql.clone();
                        let both = with_fallback(first, retry);
                        if both.sql != first_sql {
                            p.raw = raw;
                            p.new_tokens = new_tokens;
                        }
                        p.sql = both.sql;
                        p.candidates = both.candidates;
                        p.latency_ms += t1.elapsed().as_secs_f64() * 1e3;
                    }
                }
                out[i] = Some(p);
            }
            if let Some(bar) = progress {
                bar.inc(chunk.len() as u64);
            }
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.ok_or_else(|| SqlgenError::Invalid(format!("no prediction for question {i}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::prompt::{render_chat, ANSWER_PRIME};
    use sqlora_data::dataset::{Domain, Example};

    /// The real default model (see `sqlora_model::testing::real_model_path`).
    fn real_model() -> Option<LoadedModel> {
        let path = sqlora_model::testing::real_model_path()?;
        // The f32 activation path: these tests compare batched generation with generation
        // alone token for token, which 8-bit activations do not promise at near-ties.
        Some(
            sqlora_model::load(&path, &candle_core::Device::Cpu)
                .unwrap()
                .with_activation_precision(sqlora_model::quant::ActivationPrecision::F32),
        )
    }

    #[test]
    fn predictions_equal_plain_generation_of_the_ask_prompt() {
        let Some(m) = real_model() else { return };
        let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let tmp = tempfile::tempdir().unwrap();
        let mut by_domain = Vec::new();
        for name in ["retail", "library"] {
            let d = Domain::open(&datasets.join(name)).unwrap();
            sqlora_data::fixtures::build_domain(&d, tmp.path(), 1).unwrap();
            by_domain.push(d.split("test").unwrap());
        }
        // Interleaved databases: the output must follow the input order.
        let examples: Vec<Example> = vec![
            by_domain[0][0].clone(),
            by_domain[1][0].clone(),
            by_domain[0][1].clone(),
        ];
        let db_for = |e: &Example| {
            tmp.path()
                .join(&e.db_id)
                .join(format!("{}.sqlite", e.db_id))
        };
        let questions: Vec<Question<'_>> = examples
            .iter()
            .map(|e| Question::new(&e.id, &e.db_id, &e.question, db_for(e)))
            .collect();
        let full_opts = PredictOptions {
            batch_size: 2,
            max_new_tokens: 24,
            stop_at_statement_end: false,
            fallback: 0,
            ..PredictOptions::default()
        };
        let full = predict(&m, None, &questions, &full_opts, None).unwrap();
        let early_opts = PredictOptions {
            stop_at_statement_end: true,
            ..full_opts.clone()
        };
        let early = predict(&m, None, &questions, &early_opts, None).unwrap();
        let builder = PromptBuilder::builtin();
        let params = GenerateParams {
            max_new_tokens: 24,
            ..GenerateParams::default()
        };
        for (i, ex) in examples.iter().enumerate() {
            assert_eq!(full[i].id, ex.id);
            assert_eq!(early[i].id, ex.id);
            // What `ask` does for this question: one prompt, alone, primed.
            let schema = Schema::introspect(&db_for(ex)).unwrap();
            let messages = builder.messages(&ex.question, &schema).unwrap();
            let prompt = render_chat(&m, &messages).unwrap() + ANSWER_PRIME;
            let ids = m.tokenizer.encode(&prompt, false).unwrap();
            let alone = crate::answer::generate(&m, None, &[ids], &params).unwrap();
            let raw = format!("{ANSWER_PRIME}{}", alone[0].text);
            assert_eq!(full[i].raw, raw, "{}", ex.id);
            assert_eq!(full[i].sql, answer_sql(&raw, &schema));
            assert_eq!(early[i].sql, full[i].sql, "{}", ex.id);
            assert!(early[i].new_tokens <= full[i].new_tokens);
            assert!(full[i].latency_ms > 0.0);
        }
    }

    #[test]
    fn candidates_are_beam_search_on_the_ask_prompt_and_the_vote_picks_the_answer() {
        let Some(m) = real_model() else { return };
        let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let tmp = tempfile::tempdir().unwrap();
        let d = Domain::open(&datasets.join("retail")).unwrap();
        sqlora_data::fixtures::build_domain(&d, tmp.path(), 1).unwrap();
        let examples: Vec<Example> = d.split("test").unwrap().into_iter().take(2).collect();
        let db = tmp.path().join("retail").join("retail.sqlite");
        let questions: Vec<Question<'_>> = examples
            .iter()
            .map(|e| Question::new(&e.id, &e.db_id, &e.question, db.clone()))
            .collect();
        let opts = PredictOptions {
            max_new_tokens: 24,
            candidates: 3,
            constrain: Some(Constrainer::new(&m)),
            ..PredictOptions::default()
        };
        let preds = predict(&m, None, &questions, &opts, None).unwrap();
        let schema = Schema::introspect(&db).unwrap();
        let constraints = Constrainer::new(&m).for_schema(&schema, true);
        let params = GenerateParams {
            max_new_tokens: 24,
            ..GenerateParams::default()
        };
        for (p, ex) in preds.iter().zip(&examples) {
            assert_eq!(p.id, ex.id);
            // The candidates are beam search's n-best on the whole `ask` prompt.
            let prompt = opts
                .prompts
                .prompt(&m, &schema, &ex.question, true)
                .unwrap();
            let ids = m.tokenizer.encode(&prompt, false).unwrap();
            let texts =
                crate::answer::candidates(&m, None, &ids, 3, &params, Some(&constraints)).unwrap();
            let sqls: Vec<String> = texts
                .iter()
                .map(|t| answer_sql(&primed_answer(true, t), &schema))
                .collect();
            let got: Vec<String> = p.candidates.iter().map(|b| b.sql.clone()).collect();
            assert_eq!(got, sqls, "{}", ex.id);
            // Exactly one is chosen, it is the prediction, and no valid one has more votes.
            let chosen: Vec<_> = p.candidates.iter().filter(|b| b.chosen).collect();
            assert_eq!(chosen.len(), 1);
            assert_eq!(chosen[0].sql, p.sql);
            let most = p.candidates.iter().map(|b| b.votes).max().unwrap();
            assert!(!chosen[0].valid || chosen[0].votes == most);
        }
        // One candidate without the fallback: greedy, and no ballots listed.
        let greedy = PredictOptions {
            candidates: 1,
            fallback: 0,
            ..opts.clone()
        };
        let preds = predict(&m, None, &questions, &greedy, None).unwrap();
        assert!(preds.iter().all(|p| p.candidates.is_empty()));
    }

    #[test]
    fn a_failed_greedy_prediction_falls_back_to_the_first_beam_that_runs() {
        let Some(m) = real_model() else { return };
        let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        let tmp = tempfile::tempdir().unwrap();
        let d = Domain::open(&datasets.join("retail")).unwrap();
        sqlora_data::fixtures::build_domain(&d, tmp.path(), 1).unwrap();
        let examples: Vec<Example> = d.split("test").unwrap().into_iter().take(8).collect();
        let path = tmp.path().join("retail").join("retail.sqlite");
        let questions: Vec<Question<'_>> = examples
            .iter()
            .map(|e| Question::new(&e.id, &e.db_id, &e.question, path.clone()))
            .collect();
        // Free decoding with a short budget: the small model's greedy answers often fail.
        let plain = PredictOptions {
            max_new_tokens: 24,
            fallback: 0,
            ..PredictOptions::default()
        };
        let rescued = PredictOptions {
            fallback: 3,
            ..plain.clone()
        };
        let greedy = predict(&m, None, &questions, &plain, None).unwrap();
        let with = predict(&m, None, &questions, &rescued, None).unwrap();
        let db = ReadOnlyDb::open(&path).unwrap();
        let schema = Schema::introspect(&path).unwrap();
        let params = GenerateParams {
            max_new_tokens: 24,
            ..GenerateParams::default()
        };
        let limits = sqlora_sql::exec::ExecLimits::default();
        let mut fell_back = 0;
        for ((g, w), ex) in greedy.iter().zip(&with).zip(&examples) {
            if db.execute(&g.sql, &limits).is_ok() {
                // A greedy answer that runs is kept as it is.
                assert_eq!(w.sql, g.sql, "{}", ex.id);
                assert!(w.candidates.is_empty());
                continue;
            }
            fell_back += 1;
            // The greedy answer first, then beam search's n-best on the same prompt, looked
            // at up to the first that runs, which is the answer (else the greedy one stays).
            let prompt = plain
                .prompts
                .prompt(&m, &schema, &ex.question, true)
                .unwrap();
            let ids = m.tokenizer.encode(&prompt, false).unwrap();
            let beams = crate::answer::candidates(&m, None, &ids, 3, &params, None).unwrap();
            let beam_sqls: Vec<String> = beams
                .iter()
                .map(|t| answer_sql(&primed_answer(true, t), &schema))
                .collect();
            let got: Vec<&str> = w.candidates.iter().map(|b| b.sql.as_str()).collect();
            assert_eq!(got[0], g.sql, "{}", ex.id);
            let runs = beam_sqls
                .iter()
                .position(|s| db.execute(s, &limits).is_ok());
            let looked = runs.map_or(beam_sqls.len(), |i| i + 1);
            assert_eq!(&got[1..], &beam_sqls[..looked], "{}", ex.id);
            assert_eq!(
                w.sql,
                runs.map_or(&g.sql, |i| &beam_sqls[i]).as_str(),
                "{}",
                ex.id
            );
        }
        assert!(fell_back > 0, "no greedy answer failed: {greedy:?}");
    }

    #[test]
    fn a_zero_batch_size_is_refused_before_any_work() {
        let Some(m) = real_model() else { return };
        let opts = PredictOptions {
            batch_size: 0,
            ..PredictOptions::default()
        };
        assert!(matches!(
            predict(&m, None, &[], &opts, None),
            Err(SqlgenError::Invalid(_))
        ));
    }
}
