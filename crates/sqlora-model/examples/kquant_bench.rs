//! Speed of the block kernels ([`QWeight::matmul_t_with`]) per format and instruction set:
//! `cargo run --release -p sqlora-model --example kquant_bench -- [ROWS COLS]` (default
//! 8960 × 1536, the gate/up projection of Qwen2.5-Coder-1.5B).
//!
//! Prints, for 1 and 8 activation rows, the median time of one product and the weight bytes
//! read per second (the blocks as the GGUF file stores them), on random blocks with realistic
//! scales. Uses rayon's default pool (`RAYON_NUM_THREADS` to change it).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use half::f16;
use rand::{Rng, SeedableRng};
use sqlora_model::llama::Linear;
use sqlora_model::quant::{Isa, QFormat, QWeight};

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
    println!("| format | ISA | n | ms per product | weight GB/s | GFLOP/s |");
    println!("|---|---|---|---|---|---|");
    for format in [
        QFormat::Q4_K,
        QFormat::Q5_0,
        QFormat::Q6_K,
        QFormat::Q8_0,
        QFormat::Q4_1,
        QFormat::F32,
    ] {
        if !cols.is_multiple_of(format.block_len()) {
            continue;
        }
        let w = random(format, rows, cols, &mut rng);
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Scalar] {
            if !isa.supported() {
                continue;
            }
            for n in [1, 8] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
                let mut y = vec![0f32; n * rows];
                w.matmul_t_with(isa, &x, n, &mut y)?;
                let reps = if isa == Isa::Scalar { 3 } else { 15 };
                let mut times: Vec<f64> = (0..reps)
                    .map(|_| {
                        let t = Instant::now();
                        w.matmul_t_with(isa, &x, n, &mut y).expect("shapes checked");
                        t.elapsed().as_secs_f64()
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                let t = times[times.len() / 2];
                println!(
                    "| {format:?} | {isa:?} | {n} | {:.3} | {:.2} | {:.2} |",
                    t * 1e3,
                    w.size_in_bytes() as f64 / t / 1e9,
                    2.0 * (n * rows * cols) as f64 / t / 1e9
                );
            }
        }
    }
    many_rows(rows, cols, &mut rng)?;
    Ok(())
}

/// Products of many rows (prefill) with a Q4_K weight: the f32 weight through candle's gemm,
/// blocks only through [`Linear::forward`] (tile-by-tile dequantization above `MAX_ROWS`), and
/// the block kernel itself at any row count.
fn many_rows(
    rows: usize,
    cols: usize,
    rng: &mut impl Rng,
) -> Result<(), Box<dyn std::error::Error>> {
    let format = QFormat::Q4_K;
    if !cols.is_multiple_of(format.block_len()) {
        return Ok(());
    }
    let q = random(format, rows, cols, rng);
    let w = Tensor::from_vec(q.dequantize(), (rows, cols), &Device::Cpu)?;
    let dense = Linear::new(w, None, "dense");
    let blocks = Linear::new(
        Tensor::zeros((rows, cols), DType::F32, &Device::Cpu)?,
        None,
        "q",
    )
    .with_quant(q.clone())?;
    println!();
    println!("| n | f32 gemm ms | blocks, Linear::forward ms | block kernel ms |");
    println!("|---|---|---|---|");
    for n in [8, 16, 17, 32, 64, 128, 400] {
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
        let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu)?;
        let mut y = vec![0f32; n * rows];
        let median = |f: &mut dyn FnMut()| {
            f();
            let mut t: Vec<f64> = (0..5)
                .map(|_| {
                    let s = Instant::now();
                    f();
                    s.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[2]
        };
        let a = median(&mut || {
            dense.forward(&xt).expect("forward");
        });
        let b = median(&mut || {
            blocks.forward(&xt).expect("forward");
        });
        let c = median(&mut || {
            q.matmul_t(&x, n, &mut y).expect("shapes checked");
        });
        println!("| {n} | {a:.2} | {b:.2} | {c:.2} |");
    }
    assert!(!blocks.has_dense_weight());
    Ok(())
}
