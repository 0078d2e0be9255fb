//! Quick speed probe: `cargo run --release -p sqlora-model --example speed -- <model.gguf|dir>`.
//! Prints prefill time for a ~400-token prompt and decode tokens/s at batch 1 and 8.
//!
//! `SPEED_PROFILE_BATCH=N` runs only the decode at batch N after the prompt, 256 steps, and
//! prints `prefilled` to standard error when the timed steps begin: the moment to attach a
//! profiler (`tools/bench/profile_decode.sh` does, with `perf record -p`).

use std::time::Instant;

use candle_core::{Device, Tensor};
use sqlora_model::generate::argmax;
use sqlora_model::llama::Cache;
use sqlora_model::{generate, load, GenerateParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    let profile: Option<usize> = match std::env::var("SPEED_PROFILE_BATCH") {
        Ok(v) => Some(v.parse()?),
        Err(_) => None,
    };
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: speed <model.gguf | folder>")?;
    println!(
        "avx: {}, threads: {}",
        candle_core::utils::with_avx(),
        candle_core::utils::get_num_threads()
    );
    let t0 = Instant::now();
    let m = load(std::path::Path::new(&path), &Device::Cpu)?;
    println!("load: {:.2}s", t0.elapsed().as_secs_f64());
    let text = "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER, salary REAL);\n"
        .repeat(16);
    let mut ids = m.tokenizer.encode(&text, false)?;
    ids.truncate(400);
    println!("prompt tokens: {}", ids.len());
    // Prefill.
    for _ in 0..if profile.is_some() { 0 } else { 2 } {
        let t = Instant::now();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let pos: Vec<u32> = (0..ids.len() as u32).collect();
        let pos = Tensor::new(pos.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let mut cache = Cache::new(&m.config);
        let _h = m.model.forward(&input, &pos, None, Some(&mut cache))?;
        let dt = t.elapsed().as_secs_f64();
        println!(
            "prefill {} tokens: {:.3}s ({:.0} tok/s)",
            ids.len(),
            dt,
            ids.len() as f64 / dt
        );
    }
    let short: Vec<u32> = ids[..32].to_vec();
    for batch in if profile.is_some() {
        vec![]
    } else {
        vec![1usize, 8]
    } {
        let prompts = vec![short.clone(); batch];
        let n = 64;
        let params = GenerateParams {
            max_new_tokens: n,
            stop_on_eos: false,
            ..Default::default()
        };
        let t = Instant::now();
        let g = generate(&m, &prompts, &params)?;
        let dt = t.elapsed().as_secs_f64();
        let total: usize = g.iter().map(|x| x.tokens.len()).sum();
        println!(
            "batch {batch}: {total} tokens in {dt:.2}s = {:.1} tok/s (incl. 32-token prefill)",
            total as f64 / dt
        );
    }
    // Decode alone after the full prompt, as the llama.cpp peer measures it: the prompt is
    // prefilled (untimed), then 64 steps of forward + head + greedy argmax per row are timed.
    let steps = if profile.is_some() { 256 } else { 64 };
    for batch in profile.map_or(vec![1usize, 8], |b| vec![b]) {
        let dev = &Device::Cpu;
        let t = ids.len();
        let flat: Vec<u32> = (0..batch).flat_map(|_| ids.iter().copied()).collect();
        let pos: Vec<u32> = (0..batch).flat_map(|_| 0..t as u32).collect();
        let mut cache = Cache::with_capacity(&m.config, t + 64);
        let h = m.model.forward(
            &Tensor::from_vec(flat, (batch, t), dev)?,
            &Tensor::from_vec(pos, (batch, t), dev)?,
            None,
            Some(&mut cache),
        )?;
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?;
        let logits: Vec<Vec<f32>> = m.model.logits(&last)?.to_vec2()?;
        let mut next: Vec<u32> = logits.iter().map(|l| argmax(l)).collect();
        if profile.is_some() {
            eprintln!("prefilled");
        }
        let start = Instant::now();
        for step in 0..steps {
            let h = m.model.forward(
                &Tensor::from_vec(next.clone(), (batch, 1), dev)?,
                &Tensor::from_vec(vec![(t + step) as u32; batch], (batch, 1), dev)?,
                None,
                Some(&mut cache),
            )?;
            let logits: Vec<Vec<f32>> = m.model.logits(&h.squeeze(1)?)?.to_vec2()?;
            next = logits.iter().map(|l| argmax(l)).collect();
        }
        let per_step = start.elapsed().as_secs_f64() / steps as f64;
        println!(
            "decode after {t} tokens, batch {batch}: {:.1} ms/step = {:.1} tok/s",
            per_step * 1e3,
            batch as f64 / per_step
        );
    }
    Ok(())
}
