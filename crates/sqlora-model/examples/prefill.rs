//! Prefill speed alone: `cargo run --release -p sqlora-model --example prefill -- <model.gguf>
//! [TOKENS] [REPS]` (defaults 400, 3). Builds the prompt of `sqlora bench generate` (schema DDL
//! repeated), then times one forward pass over it plus the last position's logits, `REPS` times
//! after a warm-up, and prints the wall time and the CPU time of all threads of each, with
//! tokens/s of both (CPU time moves much less than wall time on a busy machine).

use std::time::Instant;

use candle_core::{Device, Tensor};
use sqlora_model::llama::Cache;
use sqlora_model::load;
use sqlora_model::testing::process_cpu_ns;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: prefill <model.gguf | folder> [TOKENS] [REPS]")?;
    let tokens: usize = args.next().map_or(Ok(400), |a| a.parse())?;
    let reps: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let m = load(std::path::Path::new(&path), &Device::Cpu)?;
    let filler = "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER \
                  REFERENCES customers(customer_id), order_date TEXT, total REAL);\n";
    let mut ids = Vec::new();
    while ids.len() < tokens {
        ids.extend(m.tokenizer.encode(filler, false)?);
    }
    ids.truncate(tokens);
    let dev = Device::Cpu;
    for rep in 0..=reps {
        let (t0, c0) = (Instant::now(), process_cpu_ns());
        let input = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
        let pos: Vec<u32> = (0..ids.len() as u32).collect();
        let pos = Tensor::new(pos.as_slice(), &dev)?.unsqueeze(0)?;
        let mut cache = Cache::with_capacity(&m.config, ids.len() + 1);
        let h = m.model.forward(&input, &pos, None, Some(&mut cache))?;
        let last = h.narrow(1, ids.len() - 1, 1)?.squeeze(1)?;
        m.model.logits(&last)?.to_vec2::<f32>()?;
        let (wall, cpu) = (
            t0.elapsed().as_secs_f64(),
            (process_cpu_ns() - c0) as f64 / 1e9,
        );
        println!(
            "{} {tokens} tokens: wall {wall:.3} s ({:.1} tok/s), cpu {cpu:.3} s ({:.1} tok/cpu-s)",
            if rep == 0 { "warm-up" } else { "prefill" },
            tokens as f64 / wall,
            tokens as f64 / cpu
        );
    }
    Ok(())
}
