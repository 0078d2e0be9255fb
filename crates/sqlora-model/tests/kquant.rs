//! The GGUF block formats against another implementation: the fixtures in
//! `tests/fixtures/reference/kquant` hold raw ggml blocks of Q4_K, Q5_0, Q6_K, Q8_0 and Q4_1 and
//! their dequantization by the `gguf` Python package (made by
//! `tools/reference/make_kquant_fixtures.py`). [`QWeight::dequantize`] must give the same f32
//! values bit for bit, and every kernel must equal the product with those values.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use sqlora_model::quant::{Isa, QFormat, QWeight};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/kquant")
}

const FORMATS: [(&str, QFormat); 5] = [
    ("Q4_K", QFormat::Q4_K),
    ("Q5_0", QFormat::Q5_0),
    ("Q6_K", QFormat::Q6_K),
    ("Q8_0", QFormat::Q8_0),
    ("Q4_1", QFormat::Q4_1),
];

/// The fixture's weight and the reference f32 values.
fn load(name: &str, format: QFormat) -> (QWeight, Vec<f32>) {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir().join("manifest.json")).expect("kquant manifest"),
    )
    .expect("manifest is JSON");
    let rows = manifest["rows"].as_u64().expect("rows") as usize;
    let cols = manifest["cols"].as_u64().expect("cols") as usize;
    let meta = &manifest["formats"][name];
    assert_eq!(meta["block_len"].as_u64(), Some(format.block_len() as u64));
    assert_eq!(
        meta["block_bytes"].as_u64(),
        Some(format.block_bytes() as u64)
    );
    let raw = std::fs::read(dir().join(format!("{name}.blocks"))).expect("blocks");
    let want: Vec<f32> = std::fs::read(dir().join(format!("{name}.f32")))
        .expect("f32 values")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(want.len(), rows * cols);
    let w = QWeight::from_raw(format, rows, cols, raw).expect("valid blocks");
    (w, want)
}

fn isas() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| i.supported())
        .collect()
}

#[test]
fn dequantize_equals_the_gguf_package() {
    for (name, format) in FORMATS {
        let (w, want) = load(name, format);
        let mut outputs = vec![("dequantize".to_string(), w.dequantize())];
        for isa in isas() {
            let mut v = vec![f32::NAN; want.len()];
            w.dequantize_rows_with(isa, 0, w.rows(), &mut v).unwrap();
            outputs.push((format!("{isa:?}"), v));
        }
        for (how, got) in outputs {
            let bad: Vec<usize> = (0..want.len())
                .filter(|&i| got[i].to_bits() != want[i].to_bits())
                .collect();
            assert!(
                bad.is_empty(),
                "{name} ({how}): {} of {} values differ, first at {}: {} vs {}",
                bad.len(),
                want.len(),
                bad[0],
                got[bad[0]],
                want[bad[0]]
            );
        }
    }
}

#[test]
fn kernels_equal_the_reference_product() {
    let isas = isas();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (name, format) in FORMATS {
        let (w, want_w) = load(name, format);
        let (rows, cols) = (w.rows(), w.cols());
        for n in [1, 3, 8, 16] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
            let want: Vec<f64> = (0..n * rows)
                .map(|k| {
                    let (j, o) = (k / rows, k % rows);
                    (0..cols)
                        .map(|i| want_w[o * cols + i] as f64 * x[j * cols + i] as f64)
                        .sum()
                })
                .collect();
            let scale = want.iter().fold(0f64, |a, b| a.max(b.abs()));
            for &isa in &isas {
                let mut y = vec![f32::NAN; n * rows];
                w.matmul_t_with(isa, &x, n, &mut y).unwrap();
                let err = y
                    .iter()
                    .zip(&want)
                    .map(|(g, r)| (*g as f64 - r).abs())
                    .fold(0f64, f64::max)
                    / scale;
                assert!(err < 1e-5, "{name} {isa:?} n={n}: relative error {err}");
            }
        }
    }
}

/// Every block tensor of a real GGUF file (`SQLORA_KQUANT_GGUF`, e.g. a Qwen2.5-Coder Q4_K_M
/// file; skipped when unset) dequantizes like candle's `k_quants`, and the kernels on it equal
/// the f32 product.
#[test]
fn real_file_blocks_match_candle() {
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;
    let Some(path) = std::env::var_os("SQLORA_KQUANT_GGUF").filter(|p| !p.is_empty()) else {
        eprintln!("skipped: SQLORA_KQUANT_GGUF is not set");
        return;
    };
    let path = PathBuf::from(path);
    let content = sqlora_model::gguf::read_content(&path).unwrap();
    let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut seen = std::collections::HashMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for name in names {
        let info = &content.tensor_infos[name];
        let format = match info.ggml_dtype {
            GgmlDType::Q4K => QFormat::Q4_K,
            GgmlDType::Q5_0 => QFormat::Q5_0,
            GgmlDType::Q6K => QFormat::Q6_K,
            GgmlDType::Q8_0 => QFormat::Q8_0,
            _ => continue,
        };
        // Three tensors per format (the large embedding and head included when they come first).
        let count = seen.entry(format).or_insert(0);
        if *count == 3 {
            continue;
        }
        *count += 1;
        let q = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
        let &[rows, cols] = q.shape().dims() else {
            continue;
        };
        let w = QWeight::from_raw(format, rows, cols, q.data().unwrap().into_owned()).unwrap();
        let want: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            w.dequantize() == want,
            "{name} ({format:?}) differs from candle"
        );
        let n = 3;
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
        let mut y = vec![0f32; n * rows];
        w.matmul_t(&x, n, &mut y).unwrap();
        for o in (0..rows).step_by(rows.div_ceil(97)) {
            for j in 0..n {
                let r: f64 = (0..cols)
                    .map(|i| want[o * cols + i] as f64 * x[j * cols + i] as f64)
                    .sum();
                let tol = 1e-4 * (1.0 + r.abs());
                let got = y[j * rows + o] as f64;
                assert!((got - r).abs() < tol, "{name} row {o}: {got} vs {r}");
            }
        }
        eprintln!("{name}: {format:?} [{rows}, {cols}] ok");
    }
    assert!(!seen.is_empty(), "no block tensors in {}", path.display());
}
