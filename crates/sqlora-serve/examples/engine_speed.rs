//! Engine latency on the real model: one question through the model runtime alone (what `ask`
//! does), then through the engine with the prefix not yet cached, with it cached, and N
//! questions at once (continuous batch) against the runtime answering them one at a time.
//!
//! `cargo run --release -p sqlora-serve --example engine_speed -- MODEL.gguf DB.sqlite [N] [MAX_TOKENS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use sqlora_model::generate::{generate_with_adapters, GenerateParams, TokenInfo};
use sqlora_serve::engine::{self, GenRequest, PrefixSpec};
use sqlora_serve::{EngineConfig, Metrics};
use sqlora_sqlgen::{prefix_tokens, PromptBuilder};
use tokio::sync::oneshot;

const QUESTIONS: &[&str] = &[
    "How many customers are there?",
    "What is the average unit price of products?",
    "List the names of all suppliers.",
    "How many orders have been delivered to Sydney?",
    "Which product has the highest unit price?",
    "How many orders were placed in 2023?",
    "What is the total quantity of all order items?",
    "List the cities of all customers.",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: engine_speed MODEL DB.sqlite [N] [MAX_TOKENS]".into());
    }
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let max_new: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let m = Arc::new(sqlora_model::load(args[1].as_ref(), &Device::Cpu)?);
    let schema = sqlora_sql::schema::Schema::introspect(args[2].as_ref())?;
    let builder = PromptBuilder::builtin();
    let prefix = prefix_tokens(&m, &builder, &schema)?;
    let prompts: Vec<Vec<u32>> = QUESTIONS
        .iter()
        .cycle()
        .take(n + 2)
        .map(|q| {
            Ok(m.tokenizer
                .encode(&builder.prompt(&m, &schema, q, true)?, false)?)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    println!(
        "prompt {} tokens, shared prefix {} tokens, {max_new} new tokens at most",
        prompts[0].len(),
        prefix.len()
    );
    let tok = &m.tokenizer;
    let decode = |ids: &[u32]| tok.decode(ids, true);
    let info = TokenInfo {
        eos_ids: tok.eos_token_ids(),
        pad_id: tok.pad_token_id(),
        decode: &decode,
    };
    let params = GenerateParams {
        max_new_tokens: max_new,
        ..GenerateParams::default()
    };
    let runtime = |p: &Vec<u32>| -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        generate_with_adapters(&m.model, &info, std::slice::from_ref(p), &params, None)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let (h, _t) = engine::start(
        m.clone(),
        Vec::new(),
        EngineConfig::default(),
        Arc::new(Metrics::new()),
    )?;
    let submit = |p: &Vec<u32>| -> Result<oneshot::Receiver<_>, Box<dyn std::error::Error>> {
        let (reply, rx) = oneshot::channel();
        h.submit(GenRequest {
            prompt: p.clone(),
            prefix: Some(PrefixSpec {
                name: "db".into(),
                len: prefix.len(),
            }),
            adapter: None,
            max_new_tokens: max_new,
            candidates: 1,
            stop: Vec::new(),
            sampling: None,
            constraint: None,
            deadline: Instant::now() + Duration::from_secs(600),
            stream: None,
            reply,
        })?;
        Ok(rx)
    };
    let engine_one = |p: &Vec<u32>| -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        submit(p)?.blocking_recv()??;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let rt_ms = runtime(&prompts[0])?;
    let miss = engine_one(&prompts[0])?;
    let hit = engine_one(&prompts[1])?;
    let rt_ms2 = runtime(&prompts[1])?;
    println!(
        "one question, runtime alone (as `ask`):   {:.0} / {:.0} ms",
        rt_ms, rt_ms2
    );
    println!("one question, engine, prefix computed:    {miss:.0} ms");
    println!("one question, engine, prefix cached:      {hit:.0} ms");
    let t = Instant::now();
    for p in &prompts[2..] {
        runtime(p)?;
    }
    let seq = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let rxs = prompts[2..]
        .iter()
        .map(submit)
        .collect::<Result<Vec<_>, _>>()?;
    for rx in rxs {
        rx.blocking_recv()??;
    }
    let batched = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{n} questions: runtime one at a time {seq:.0} ms, engine batched with cached prefix {batched:.0} ms ({:.2}x)",
        seq / batched
    );
    h.shutdown();
    decode_steps(&m, &prompts[0], 8, 20)?;
    Ok(())
}

/// Decode steps alone at batch `b` over a cached prompt: the engine's per-row caches
/// ([`step`]) against the runtime's rectangular batch cache ([`Model::forward_with`]).
fn decode_steps(
    m: &sqlora_model::LoadedModel,
    prompt: &[u32],
    b: usize,
    steps: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use candle_core::{IndexOp, Tensor};
    use sqlora_model::llama::Cache;
    use sqlora_serve::forward::{step, Feed, Rope, RowKv};
    let rope = Rope::new(&m.config, &m.device)?;
    let mut kv = RowKv::new(&m.config, prompt.len() + steps + 1, &m.device)?;
    step(
        &m.model,
        &rope,
        &mut [Feed {
            kv: &mut kv,
            tokens: prompt,
        }],
        None,
    )?;
    let mut rows: Vec<RowKv> = (0..b)
        .map(|_| kv.fork(prompt.len() + steps + 1))
        .collect::<Result<_, _>>()?;
    let toks: Vec<[u32; 1]> = (0..b).map(|i| [100 + i as u32]).collect();
    let t = Instant::now();
    for _ in 0..steps {
        let mut feeds: Vec<Feed> = rows
            .iter_mut()
            .zip(&toks)
            .map(|(kv, t)| Feed { kv, tokens: t })
            .collect();
        step(&m.model, &rope, &mut feeds, None)?;
    }
    let ours = t.elapsed().as_secs_f64() * 1e3 / steps as f64;

    let mut cache = Cache::with_capacity(&m.config, prompt.len() + steps + 1);
    let n = prompt.len();
    let input = Tensor::new(prompt, &m.device)?.unsqueeze(0)?;
    let pos: Vec<u32> = (0..n as u32).collect();
    let positions = Tensor::new(pos.as_slice(), &m.device)?.unsqueeze(0)?;
    m.model
        .forward_with(&input, &positions, None, Some(&mut cache), None)?;
    cache.select_rows(&vec![0u32; b])?;
    let t = Instant::now();
    for s in 0..steps {
        let ids: Vec<u32> = toks.iter().map(|t| t[0]).collect();
        let input = Tensor::from_vec(ids, (b, 1), &m.device)?;
        let positions = Tensor::from_vec(vec![(n + s) as u32; b], (b, 1), &m.device)?;
        let h = m
            .model
            .forward_with(&input, &positions, None, Some(&mut cache), None)?;
        m.model.logits(&h.i((.., 0, ..))?.contiguous()?)?;
    }
    let theirs = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
    println!(
        "decode step at batch {b} over {n} cached tokens: engine {ours:.1} ms, runtime {theirs:.1} ms ({:.2}x)",
        theirs / ours
    );
    Ok(())
}
