//! Predictions for a set of questions with an already-loaded model (and adapter): the engine
//! behind `sqlora eval` with a model, also meant for the trainer's dev-set EX.
//!
//! Questions are grouped by database. Each prompt is built exactly as `sqlora ask` builds it
//! (the [`PromptBuilder`] messages rendered with the model's chat template, then the answer
//! prime); the prompts of one database share the system + schema part, so its tokens (the
//! longest common token prefix of the group) are prefilled once and every batch of questions
//! starts from that KV cache ([`sqlora_model::prefix`]). Generation is greedy, so the SQL is
//! the one `ask` would print for the same question.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlora_data::dataset::Example;
use sqlora_data::prompt::{extract_sql, PromptBuilder};
use sqlora_model::generate::{generate_with_adapters, GenerateParams, TokenInfo};
use sqlora_model::lora::{AdapterBatch, LoraAdapter};
use sqlora_model::prefix::{
    common_prefix_len, generate_from_prefix_until, prefill_prefix_with_room,
};
use sqlora_model::LoadedModel;
use sqlora_sql::schema::Schema;

use crate::cmd_model::render_prompt;

/// How [`predict`] generates.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Questions generated together in one batch (default 8).
    pub batch_size: usize,
    /// Most new tokens per question (default 160).
    pub max_new_tokens: usize,
    /// Start the answer with [`PromptBuilder::answer_prime`] (default true, as `ask` does).
    pub prime: bool,
    /// The prompt templates (default: the bundled ones).
    pub prompts: PromptBuilder,
    /// End a question's generation as soon as its SQL statement is over (a `;` or a blank
    /// line outside quotes, see [`statement_complete`]) instead of at EOS or `max_new_tokens`
    /// (default true). The extracted SQL is the same ([`extract_sql`] cuts there anyway);
    /// what follows, e.g. a base model repeating itself, is never generated.
    pub stop_at_statement_end: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            batch_size: 8,
            max_new_tokens: 160,
            prime: true,
            prompts: PromptBuilder::builtin(),
            stop_at_statement_end: true,
        }
    }
}

/// One question's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The example's id.
    pub id: String,
    /// The example's database.
    pub db_id: String,
    /// The SQL extracted from the answer ([`extract_sql`]).
    pub sql: String,
    /// The answer as generated (with the prime in front when priming).
    pub raw: String,
    /// Tokens generated.
    pub new_tokens: usize,
    /// Time spent on this question: its batch's wall time divided by the batch's size, plus
    /// its share of the database's prompt building and prefix prefill. Their sum over a run is
    /// the run's generation time.
    pub latency_ms: f64,
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

/// The database a bundled-layout example is asked about: `db_dir/<db_id>/<db_id>.sqlite` when it
/// exists, else the first `*.sqlite` of `db_dir/<db_id>/` (the file whose schema the evaluator's
/// guard uses).
pub fn db_in_dir(db_dir: &Path, db_id: &str) -> Result<PathBuf> {
    let own = db_dir.join(db_id).join(format!("{db_id}.sqlite"));
    if own.is_file() {
        return Ok(own);
    }
    let suite = sqlora_eval::exec_match::suite_paths(db_dir, db_id)
        .with_context(|| format!("no database for '{db_id}' in {}", db_dir.display()))?;
    suite
        .into_iter()
        .next()
        .with_context(|| format!("no database for '{db_id}' in {}", db_dir.display()))
}

/// Generates a prediction for every example, in the order of `examples`.
///
/// `db_for` names the SQLite file whose schema goes into an example's prompt; `adapter`
/// (already checked against the model, e.g. by `load_adapter`, and possibly truncated) applies
/// to every question. `progress`, when given, is advanced by one per question (see
/// [`progress_bar`]).
pub fn predict(
    model: &LoadedModel,
    adapter: Option<&LoraAdapter>,
    examples: &[Example],
    db_for: impl Fn(&Example) -> PathBuf,
    opts: &PredictOptions,
    progress: Option<&ProgressBar>,
) -> Result<Vec<Prediction>> {
    if opts.batch_size == 0 {
        bail!("the batch size must be at least 1");
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
    let tok = &model.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let info = TokenInfo {
        eos_ids: tok.eos_token_ids(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: opts.max_new_tokens,
        ..GenerateParams::default()
    };
    let prime = if opts.prime {
        opts.prompts.answer_prime()
    } else {
        ""
    };

    let done =
        |text: &str| opts.stop_at_statement_end && statement_complete(&format!("{prime}{text}"));

    // Group by database, keeping first-seen order.
    let mut groups: BTreeMap<usize, (PathBuf, Vec<usize>)> = BTreeMap::new();
    let mut order: Vec<PathBuf> = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        let path = db_for(ex);
        let g = match order.iter().position(|p| *p == path) {
            Some(g) => g,
            None => {
                order.push(path.clone());
                order.len() - 1
            }
        };
        groups
            .entry(g)
            .or_insert_with(|| (path, Vec::new()))
            .1
            .push(i);
    }

    let mut out: Vec<Option<Prediction>> = vec![None; examples.len()];
    for (path, members) in groups.into_values() {
        let t_group = Instant::now();
        let schema = Schema::introspect(&path)
            .with_context(|| format!("reading the schema of {}", path.display()))?;
        let mut prompts = Vec::with_capacity(members.len());
        for &i in &members {
            let ex = &examples[i];
            let messages = opts
                .prompts
                .messages(&ex.question, &schema)
                .with_context(|| format!("building the prompt of {}", ex.id))?;
            let text = render_prompt(model, &messages)? + prime;
            let ids = tok
                .encode(&text, false)
                .with_context(|| format!("tokenizing the prompt of {}", ex.id))?;
            if ids.is_empty() {
                bail!("the prompt of {} is empty", ex.id);
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
                .with_context(|| format!("prefilling the schema prompt of {}", path.display()))?,
            )
        } else {
            None
        };
        // The prompt building and prefix prefill are shared by the group's questions.
        let shared_ms = t_group.elapsed().as_secs_f64() * 1e3 / members.len() as f64;
        // Similar suffix lengths together: less padding (rows are independent).
        let mut by_len: Vec<usize> = (0..members.len()).collect();
        by_len.sort_by_key(|&k| suffixes[k].len());
        for chunk in by_len.chunks(opts.batch_size) {
            let t0 = Instant::now();
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&k| suffixes[k].clone()).collect();
            let gens = match &cache {
                Some(cache) => generate_from_prefix_until(
                    &model.model,
                    &info,
                    cache,
                    &rows,
                    &params,
                    batch.as_ref(),
                    &done,
                )?,
                None => {
                    generate_with_adapters(&model.model, &info, &rows, &params, batch.as_ref())?
                }
            };
            let each_ms = t0.elapsed().as_secs_f64() * 1e3 / chunk.len() as f64;
            for (&k, g) in chunk.iter().zip(gens) {
                let i = members[k];
                let ex = &examples[i];
                let raw = format!("{prime}{}", g.text);
                out[i] = Some(Prediction {
                    id: ex.id.clone(),
                    db_id: ex.db_id.clone(),
                    sql: extract_sql(&raw),
                    raw,
                    new_tokens: g.tokens.len(),
                    latency_ms: each_ms + shared_ms,
                });
            }
            if let Some(bar) = progress {
                bar.inc(chunk.len() as u64);
            }
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, p)| p.with_context(|| format!("no prediction for example {i}")))
        .collect()
}

/// True once `answer` holds a whole statement: a `;` or a blank line outside quotes after
/// some text, the places where [`extract_sql`] cuts (or, for an answer in a Markdown code
/// fence, once the fence is closed). More text cannot change the extracted SQL then, unless
/// it opens a code fence.
pub fn statement_complete(answer: &str) -> bool {
    if let Some(start) = answer.find("```") {
        return answer[start + 3..].contains("```");
    }
    let mut quote: Option<char> = None;
    let mut seen_text = false;
    let mut line_has_text = true;
    for c in answer.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                line_has_text = true;
                seen_text = true;
            }
            ';' => return true,
            '\n' => {
                if !line_has_text && seen_text {
                    return true;
                }
                line_has_text = false;
            }
            c if c.is_whitespace() => {}
            _ => {
                line_has_text = true;
                seen_text = true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlora_data::dataset::Domain;
    use sqlora_model::GenerateParams;

    /// The real default model (see `sqlora_model::testing::real_model_path`).
    fn real_model() -> Option<LoadedModel> {
        let path = sqlora_model::testing::real_model_path()?;
        Some(sqlora_model::load(&path, &candle_core::Device::Cpu).unwrap())
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
        let db_for = |e: &Example| db_in_dir(tmp.path(), &e.db_id).unwrap();
        let full_opts = PredictOptions {
            batch_size: 2,
            max_new_tokens: 24,
            stop_at_statement_end: false,
            ..PredictOptions::default()
        };
        let full = predict(&m, None, &examples, db_for, &full_opts, None).unwrap();
        let early_opts = PredictOptions {
            stop_at_statement_end: true,
            ..full_opts.clone()
        };
        let early = predict(&m, None, &examples, db_for, &early_opts, None).unwrap();
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
            let prompt = render_prompt(&m, &messages).unwrap() + builder.answer_prime();
            let ids = m.tokenizer.encode(&prompt, false).unwrap();
            let alone = crate::cmd_model::run_generate(&m, &[ids], &params, None).unwrap();
            let raw = builder.primed_answer(&alone[0].text);
            assert_eq!(full[i].raw, raw, "{}", ex.id);
            assert_eq!(full[i].sql, extract_sql(&raw));
            assert_eq!(early[i].sql, full[i].sql, "{}", ex.id);
            assert!(early[i].new_tokens <= full[i].new_tokens);
            assert!(full[i].latency_ms > 0.0);
        }
    }

    #[test]
    fn statements_are_complete_where_extract_sql_cuts() {
        for (text, complete) in [
            ("SELECT a FROM t", false),
            ("SELECT a FROM t;", true),
            ("SELECT a FROM t WHERE b = 'x;y'", false),
            ("SELECT a FROM t WHERE b = 'x;y';", true),
            ("SELECT a\nFROM t\n", false),
            ("SELECT a\nFROM t\n\n", true),
            ("SELECT a FROM t WHERE b = 'x\n\ny'", false),
            ("```sql\nSELECT a;", false),
            ("```sql\nSELECT a\n```", true),
        ] {
            assert_eq!(statement_complete(text), complete, "{text:?}");
            if complete {
                // Whatever follows (without a fence), the extracted SQL stays the same.
                for more in [" more words", "\nSELECT 2;", "'"] {
                    assert_eq!(
                        extract_sql(&format!("{text}{more}")),
                        extract_sql(text),
                        "{text:?} + {more:?}"
                    );
                }
            }
        }
    }
}
