//! Speed of the block kernels per format and instruction set:
//! `cargo run --release -p sqlora-model --example kquant_bench -- [ROWS COLS]` (default
//! 8960 × 1536, the gate/up projection of Qwen2.5-Coder-1.5B).
//!
//! Prints, for 1, 8, 64 and 512 activation rows, the fastest time of one product on the f32 path
//! ([`QWeight::matmul_t_with`] up to `MAX_ROWS` rows; above that what [`Linear::forward`] does
//! with f32 activations: tiles of dequantized rows through candle's gemm) and on the int8 path
//! ([`QWeight::matmul_t_q8_with`], activations quantized to 8 bits, integer dot products), with
//! the int8 path's GFLOP/s, on random blocks with realistic scales. Then the weight bytes read
//! per second at batch 1. Uses rayon's default pool (`RAYON_NUM_THREADS` to change it).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use half::f16;
use rand::{Rng, SeedableRng};
use sqlora_model::llama::Linear;
use sqlora_model::quant::{ActivationPrecision, Isa, QFormat, QWeight, MAX_ROWS};
use sqlora_model::testing::process_cpu_ns;
/// Random blocks of `format` (`d` small like a real model's, the rest random bits).
fn random(format: QFormat, rows: usize, cols: usize, rng: &mut impl Rng) -> QWeight {
    let nb = rows * cols / format.block_len();
    let bb = format.block_bytes();
    let mut data = Vec::with_capacity(nb * bb);
    for _ in 0..nb {
        let start = data.len();
        data.extend((0..bb).map(|_| rng.gen::<u8>()));
        let blk = &mut data[start..];
        let d = f16::from_f32(rng.gen_range(0.00005..0.0005))
            .to_bits()
            .to_le_bytes();
        match format {
            QFormat::F32 => {
                for c in blk.chunks_exact_mut(4) {
                    c.copy_from_slice(&rng.gen_range(-0.1f32..0.1).to_le_bytes());
                }
            }
            QFormat::Q6_K => blk[bb - 2..].copy_from_slice(&d),
            QFormat::Q4_1 | QFormat::Q4_K => {
                blk[..2].copy_from_slice(&d);
                blk[2..4].copy_from_slice(&d);
            }
            _ => blk[..2].copy_from_slice(&d),
        }
    }
    QWeight::from_raw(format, rows, cols, data).expect("valid blocks")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sqlora_model::quiet_candle_pool();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match args[..] {
        [r, c] => (r, c),
        [] => (8960, 1536),
        _ => return Err("usage: kquant_bench [ROWS COLS]".into()),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    println!(
        "weight [{rows}, {cols}], {} threads, best ISA {:?}",
        rayon::current_num_threads(),
        Isa::best()
    );
    println!("| format | ISA | n | f32 path ms | int8 path ms | speed-up | int8 GFLOP/s |");
    println!("|---|---|---|---|---|---|---|");
    let mut gbs = Vec::new();
    // `KQUANT_BENCH_ONLY=Q4_K,Q6_K` limits the formats, `KQUANT_BENCH_N=1,64` the row counts.
    let only = std::env::var("KQUANT_BENCH_ONLY").unwrap_or_default();
    let ns: Vec<usize> = std::env::var("KQUANT_BENCH_N")
        .ok()
        .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64, 512]);
    for format in [
        QFormat::Q4_K,
        QFormat::Q6_K,
        QFormat::Q5_0,
        QFormat::Q8_0,
        QFormat::Q4_1,
    ] {
        if !cols.is_multiple_of(format.block_len())
            || !(only.is_empty() || only.split(',').any(|f| f == format!("{format:?}")))
        {
            continue;
        }
        let w = random(format, rows, cols, &mut rng);
        let f32_linear = Linear::new(
            Tensor::zeros((rows, cols), DType::F32, &Device::Cpu)?,
            None,
            "q",
        )
        .with_quant(w.clone())?;
        let mut f32_linear = f32_linear;
        f32_linear.set_activation_precision(ActivationPrecision::F32);
        for isa in [Isa::Avx512, Isa::Avx2] {
            if !isa.supported() {
                continue;
            }
            for &n in &ns {
                let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
                let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu)?;
                let mut y = vec![0f32; n * rows];
                let reps = if n >= 64 { 5 } else { 15 };
                // Above MAX_ROWS the f32 path is the tiled gemm (the best ISA only).
                let f32_ms = if n <= MAX_ROWS {
                    Some(timed(reps, &mut || {
                        w.matmul_t_with(isa, &x, n, &mut y).expect("shapes checked");
                    }))
                } else if isa == Isa::best() {
                    Some(timed(reps, &mut || {
                        f32_linear.forward(&xt).expect("forward");
                    }))
                } else {
                    None
                };
                let q_ms = timed(reps, &mut || {
                    w.matmul_t_q8_with(isa, &x, n, &mut y)
                        .expect("shapes checked");
                });
                let flop = 2.0 * (n * rows * cols) as f64;
                let (f, speed) = match f32_ms {
                    Some(t) => (format!("{t:.3}"), format!("{:.2}x", t / q_ms)),
                    None => ("-".into(), "-".into()),
                };
                println!(
                    "| {format:?} | {isa:?} | {n} | {f} | {q_ms:.3} | {speed} | {:.1} |",
                    flop / q_ms / 1e6
                );
                if n == 1 && isa == Isa::best() {
                    gbs.push((format, w.size_in_bytes() as f64 / q_ms / 1e6));
                }
            }
        }
    }
    println!();
    for (format, g) in gbs {
        println!("{format:?}: int8 path at n = 1 reads the weight at {g:.1} GB/s");
    }
    Ok(())
}

/// Milliseconds of one run of `f` over `reps` runs after a warm-up run: the fastest wall time,
/// or with `KQUANT_BENCH_CPU=1` the mean CPU time of all the process's threads (which a busy
/// machine inflates much less; meant for `RAYON_NUM_THREADS=1`).
fn timed(reps: usize, f: &mut dyn FnMut()) -> f64 {
    f();
    if std::env::var("KQUANT_BENCH_CPU").as_deref() == Ok("1") {
        let start = process_cpu_ns();
        for _ in 0..reps {
            f();
        }
        return (process_cpu_ns() - start) as f64 / 1e6 / reps as f64;
    }
    (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}
