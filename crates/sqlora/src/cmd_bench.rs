//! `sqlora bench generate`: prefill and decode throughput of the model runtime, with
//! `--lora` the multi-adapter modes (8 rows on 8 adapters, on one adapter, merged, bare base),
//! and with `--constrain DB` decode with every row constrained to SQL over DB's schema.
//! The peers (llama.cpp, PEFT) are measured by the scripts in `tools/bench/`, run in the same
//! session by `tools/bench/run.sh`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Tensor;
use clap::Subcommand;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;
use sqlora_model::constraint::Constraint;
use sqlora_model::generate::{argmax, choose_token};
use sqlora_model::llama::{Cache, Model};
use sqlora_model::lora::{
    merge_adapter, targeted_linears, AdapterBatch, AdapterId, AdapterSet, LoraAdapter, LoraConfig,
    PROJECTIONS,
};
use sqlora_sqlgen::{Constrainer, PromptBuilder, SchemaConstraints};

use crate::cmd_model::{load_model, ModelArg};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Prefill tokens/s (a long prompt) and decode tokens/s at batch 1 and batch 8 after that
    /// prompt; with `--lora`, decode tokens/s of 8 rows (32-token prompts) on 8 different
    /// adapters, on one adapter, with the adapter merged, and on the bare base.
    Generate {
        #[command(flatten)]
        model: ModelArg,
        /// Prompt length for the prefill measurement.
        #[arg(long, default_value_t = 400)]
        prompt_tokens: usize,
        /// Tokens decoded per row in the decode measurements.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// Measured repetitions (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Also measure the LoRA modes (random rank-8 adapters on all seven projections).
        #[arg(long)]
        lora: bool,
        /// Also measure decode after the `ask` prompt of a question about this database (a
        /// SQLite file or a bundled domain), free and with every row constrained to SQL over
        /// its schema (a row whose statement ended goes on free, as a real decoder stops it).
        #[arg(long, value_name = "DB")]
        constrain: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Load generator for `sqlora serve`: concurrent clients over adapters; throughput,
    /// p50/p99 latency, errors (see BENCHMARKS.md).
    Serve(crate::cmd_bench_serve::BenchServeArgs),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median wall time of `f` over `reps` runs after one warm-up.
fn time_it<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// A random adapter (rank 8, alpha 16, every projection) with non-zero B, so its term is real
/// work and changes the output.
fn random_adapter(model: &Model, name: &str, seed: u64) -> Result<LoraAdapter> {
    let config = LoraConfig::new(8, 16.0, &PROJECTIONS);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut modules = BTreeMap::new();
    for lin in targeted_linears(model, &config)? {
        let (i, o) = (lin.in_features(), lin.out_features());
        let mut rand =
            |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-s..s)).collect() };
        let a = Tensor::from_vec(rand(8 * i, 0.05), (8, i), model.device())?;
        let b = Tensor::from_vec(rand(o * 8, 0.05), (o, 8), model.device())?;
        modules.insert(lin.name().to_string(), (a, b));
    }
    Ok(LoraAdapter::new(name, config, modules)?)
}

struct Runner {
    reps: usize,
    /// The model's end-of-sequence ids (a constrained row whose statement ended goes on free).
    eos: Vec<u32>,
}

/// The question of the constrained decode measurement: any schema has tables to count.
const BENCH_QUESTION: &str = "Which table has the most rows, and how many does each table have?";

impl Runner {
    /// Prefill tokens/s: one forward pass over `ids` (batch 1) plus the last position's
    /// logits; median of `reps` after a warm-up.
    fn prefill_rate(&self, model: &Model, ids: &[u32]) -> Result<f64> {
        let dev = model.device().clone();
        let t = time_it(self.reps, || {
            let input = Tensor::new(ids, &dev)?.unsqueeze(0)?;
            let pos: Vec<u32> = (0..ids.len() as u32).collect();
            let pos = Tensor::new(pos.as_slice(), &dev)?.unsqueeze(0)?;
            let mut cache = Cache::with_capacity(model.config(), ids.len() + 1);
            let h = model.forward(&input, &pos, None, Some(&mut cache))?;
            let last = h.narrow(1, ids.len() - 1, 1)?.squeeze(1)?;
            model.logits(&last)?.to_vec2::<f32>()?;
            Ok(())
        })?;
        Ok(ids.len() as f64 / t)
    }

    /// Decode tokens/s over all rows: every row is `prompt`, prefilled untimed; then `n` greedy
    /// steps (forward of one token per row with the KV cache, vocabulary projection, argmax)
    /// are timed, as the llama.cpp peer measures it. Median of `reps` after a warm-up.
    fn decode_rate(
        &self,
        model: &Model,
        prompt: &[u32],
        rows: usize,
        n: usize,
        adapters: Option<&AdapterBatch>,
        constraint: Option<&SchemaConstraints>,
    ) -> Result<f64> {
        let dev = model.device().clone();
        let t = prompt.len();
        // The prompt is prefilled once (one row when every row is the same model, else every
        // row with its adapter); each repetition decodes from its own copy of that cache
        // (`select_rows` copies), so no time goes to prefilling again.
        let prefill_rows = if adapters.is_some() { rows } else { 1 };
        let flat: Vec<u32> = (0..prefill_rows)
            .flat_map(|_| prompt.iter().copied())
            .collect();
        let pos: Vec<u32> = (0..prefill_rows).flat_map(|_| 0..t as u32).collect();
        let mut prefilled = Cache::with_capacity(model.config(), t + n + 1);
        let h = model.forward_with(
            &Tensor::from_vec(flat, (prefill_rows, t), &dev)?,
            &Tensor::from_vec(pos, (prefill_rows, t), &dev)?,
            None,
            Some(&mut prefilled),
            adapters,
        )?;
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?;
        let logits: Vec<Vec<f32>> = model.logits(&last)?.to_vec2()?;
        let first: Vec<u32> = logits.iter().map(|l| argmax(l)).collect();
        let pick: Vec<u32> = (0..rows as u32)
            .map(|r| if prefill_rows == 1 { 0 } else { r })
            .collect();
        let mut times = Vec::new();
        for rep in 0..=self.reps.max(1) {
            let mut cache = prefilled.clone();
            cache.select_rows(&pick)?;
            let mut next: Vec<u32> = pick.iter().map(|&r| first[r as usize]).collect();
            // Constrained rows start right after the prime, whatever the prompt's argmax was.
            let mut rows_c: Vec<Option<Box<dyn Constraint>>> = match constraint {
                Some(c) => c.rows(rows)?,
                None => Vec::new(),
            };
            let start = Instant::now();
            for step in 0..n {
                let h = model.forward_with(
                    &Tensor::from_vec(next.clone(), (rows, 1), &dev)?,
                    &Tensor::from_vec(vec![(t + step) as u32; rows], (rows, 1), &dev)?,
                    None,
                    Some(&mut cache),
                    adapters,
                )?;
                let logits: Vec<Vec<f32>> = model.logits(&h.squeeze(1)?)?.to_vec2()?;
                next = if rows_c.is_empty() {
                    logits.iter().map(|l| argmax(l)).collect()
                } else {
                    // A row whose statement is over (it chose an end token, or its constraint
                    // allows nothing more) goes on free with the plain argmax, as the free
                    // rows do after their end token, so every row decodes `n` tokens.
                    logits
                        .iter()
                        .zip(rows_c.iter_mut())
                        .map(|(l, c)| match choose_token(l, c) {
                            Some(tok) => {
                                if self.eos.contains(&tok) {
                                    *c = None;
                                }
                                tok
                            }
                            None => {
                                *c = None;
                                argmax(l)
                            }
                        })
                        .collect()
                };
            }
            if rep > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        Ok((rows * n) as f64 / median(times))
    }
}

pub fn bench(cmd: BenchCmd) -> Result<ExitCode> {
    let (model, prompt_tokens, decode_tokens, reps, lora, constrain, json) = match cmd {
        BenchCmd::Serve(a) => {
            crate::cmd_bench_serve::run(&a)?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Generate {
            model,
            prompt_tokens,
            decode_tokens,
            reps,
            lora,
            constrain,
            json,
        } => (
            model,
            prompt_tokens,
            decode_tokens,
            reps,
            lora,
            constrain,
            json,
        ),
    };
    let m = load_model(&model)?;
    let r = Runner {
        reps,
        eos: m.tokenizer.eos_token_ids(),
    };
    // A realistic long prompt: schema DDL repeated until long enough.
    let filler = "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id), order_date TEXT, total REAL);\n";
    let mut long = Vec::new();
    while long.len() < prompt_tokens {
        long.extend(m.tokenizer.encode(filler, false)?);
    }
    long.truncate(prompt_tokens);
    let short: Vec<u32> = long[..32.min(long.len())].to_vec();

    let mut results = Vec::new();
    let prefill = r.prefill_rate(&m.model, &long)?;
    results.push(
        json!({"what": "prefill", "batch": 1, "tokens": prompt_tokens, "tokens_per_s": prefill}),
    );
    // Decode after the long prompt, as the llama.cpp peer measures it (attention then reads a
    // ~400-position cache at every step).
    for batch in [1usize, 8] {
        let rate = r.decode_rate(&m.model, &long, batch, decode_tokens, None, None)?;
        results.push(json!({"what": "decode", "batch": batch, "context": prompt_tokens, "tokens": decode_tokens, "tokens_per_s": rate}));
    }
    if let Some(db) = &constrain {
        let path = crate::paths::resolve_db(db)?;
        let schema = sqlora_sql::schema::Schema::introspect(&path)
            .with_context(|| format!("reading the schema of {}", path.display()))?;
        let constrainer = Constrainer::new(&m);
        let sc = constrainer.for_schema(&schema, true);
        // What `ask` sends for a question about this database (schema prompt, question, the
        // `SELECT` prime), decoded free and constrained: the cost of the constraint where the
        // model writes the SQL it was asked for.
        let text = PromptBuilder::builtin().prompt(&m, &schema, BENCH_QUESTION, true)?;
        let asked = m.tokenizer.encode(&text, false)?;
        for batch in [1usize, 8] {
            let free = r.decode_rate(&m.model, &asked, batch, decode_tokens, None, None)?;
            results.push(json!({"what": "decode_question", "batch": batch, "context": asked.len(), "tokens": decode_tokens, "tokens_per_s": free, "database": db}));
            let rate = r.decode_rate(&m.model, &asked, batch, decode_tokens, None, Some(&sc))?;
            results.push(json!({"what": "decode_constrained", "batch": batch, "context": asked.len(), "tokens": decode_tokens, "tokens_per_s": rate, "database": db}));
        }
    }
    if lora {
        let mut set = AdapterSet::new(m.model.device());
        let mut ids: Vec<AdapterId> = Vec::new();
        for i in 0..8u64 {
            let a = random_adapter(&m.model, &format!("bench{i}"), 1000 + i)?;
            ids.push(set.insert(a)?);
        }
        let mixed_rows: Vec<Option<AdapterId>> = ids.iter().copied().map(Some).collect();
        let one_rows = vec![Some(ids[0]); 8];
        let mixed = set.batch(&mixed_rows)?;
        let one = set.batch(&one_rows)?;
        let adapter0 = set.get(ids[0]).context("adapter 0 is resident")?;
        let mut merged = m.model.clone();
        merge_adapter(&mut merged, adapter0)?;
        for (what, model, batch) in [
            ("lora_mixed_8_adapters", &m.model, Some(&mixed)),
            ("lora_one_adapter", &m.model, Some(&one)),
            ("lora_merged", &merged, None),
            ("lora_base", &m.model, None),
        ] {
            let rate = r.decode_rate(model, &short, 8, decode_tokens, batch, None)?;
            results.push(
                json!({"what": what, "batch": 8, "tokens": decode_tokens, "tokens_per_s": rate}),
            );
        }
    }
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    if json {
        println!(
            "{}",
            json!({"engine": "sqlora", "model": m.source, "threads": threads, "results": results})
        );
    } else {
        println!("model: {} ({threads} threads)", m.source.display());
        for res in &results {
            println!(
                "{:<24} batch {:>2}  {:>9.1} tokens/s",
                res["what"].as_str().unwrap_or(""),
                res["batch"],
                res["tokens_per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
