//! Quantized weights kept as GGUF blocks, and multithreaded CPU kernels for products with them.
//!
//! Decoding at batch 1..=16 is memory-bound: reading a projection's f32 weight costs 4 bytes per
//! weight, its Q4_1 blocks 0.625. [`QWeight`] keeps the blocks exactly as the GGUF file stores
//! them. Two kernels compute `y[n, out] = x[n, in] · Wᵀ` from them, chosen by
//! [`ActivationPrecision`]:
//!
//! * f32 activations ([`QWeight::matmul_t`], up to [`MAX_ROWS`] rows; the reference): each
//!   block is dequantized once into registers (`w = d·q + m` for Q4_1, `w = d·q` for Q8_0, in
//!   f32 exactly like dequantizing to f32 first) and multiplied with all `n` activation rows.
//!   The result differs from the f32 product only in summation order.
//! * 8-bit activations ([`QWeight::matmul_t_q8`], any number of rows; the inference default,
//!   `SQLORA_F32_ACTIVATIONS=1` turns it off): the activation rows are quantized once per
//!   product and every block is dotted with them in integers, as llama.cpp does (module `q8`,
//!   after ggml's `quantize_row_q8_K`, `ggml_vec_dot_q4_K_q8_K`, `ggml_vec_dot_q6_K_q8_K`,
//!   `ggml_vec_dot_q5_0_q8_0`, `ggml_vec_dot_q8_0_q8_0`, `ggml_vec_dot_q4_1_q8_1`). The result
//!   differs from the f32 product by the activations' rounding (at most `Σ|w|·dx/2` per output,
//!   `dx` = a block's largest |x| / 127); prompts go through the same kernels, tiled over
//!   weight rows × activation rows, which beats dequantizing tiles for candle's f32 gemm.
//!
//! Block layouts (ggml):
//! * Q4_1, 20 bytes per 32 weights: f16 `d`, f16 `m`, 16 bytes of nibbles; the low nibble of
//!   byte `i` is element `i`, the high nibble element `i + 16`.
//! * Q5_0, 22 bytes per 32 weights: f16 `d`, a little-endian `u32` `qh` whose bit `i` is the
//!   fifth bit of element `i`, 16 bytes of low nibbles laid out like Q4_1's; `w = d·(q − 16)`.
//! * Q8_0, 34 bytes per 32 weights: f16 `d`, 32 `i8`.
//! * Q4_K, 144 bytes per super-block of 256 weights: f16 `d`, f16 `dmin`, 12 bytes of 6-bit
//!   sub-block scales and mins (8 of each, packed as ggml's `get_scale_min_k4`), 128 bytes of
//!   nibbles: sub-block `2p` is the low nibbles of bytes `32p..32p + 32`, sub-block `2p + 1`
//!   their high nibbles; `w = d·sc_j·q − dmin·m_j`.
//! * Q6_K, 210 bytes per super-block of 256 weights: 128 bytes `ql` (low 4 bits), 64 bytes `qh`
//!   (high 2 bits), 16 `i8` scales (one per 16 weights), f16 `d` last; `w = d·sc_j·(q − 32)`.
//!   Each half of 128 weights uses 64 bytes of `ql` and 32 of `qh`: its sub-block `k` of 32
//!   takes nibble `k / 2` of `ql[32·(k % 2) + l]` and bits `2k, 2k + 1` of `qh[l]`.
//! * F32, 128 bytes per 32 weights (little-endian `f32`s), a plain fallback.
//!
//! Every product in these dequantizations is exact in f32 (at most 24 significant bits), so
//! the kernels' fused multiply-adds decode to the same values as the scalar path and ggml.
//!
//! The kernels pick AVX-512, AVX2+FMA or a scalar loop at run time ([`Isa::best`]); output rows
//! are split across rayon's pool.

use candle_core::{DType, Device, Storage, Tensor};
use half::f16;
use rayon::prelude::*;

use crate::error::{ModelError, Result};

mod q8;

/// Weights per block of the 32-weight formats, and per sub-block of the K-quants (whose
/// super-blocks hold [`QK_K`]); every kernel step decodes this many weights.
pub const BLOCK: usize = 32;

/// Weights per super-block of the K-quants (Q4_K, Q6_K).
pub const QK_K: usize = 256;

/// Most activation rows [`QWeight::matmul_t`] (f32 activations) is meant for (more work, but
/// slower than a blocked f32 GEMM beyond it).
pub const MAX_ROWS: usize = 16;

/// A block format (variants named as in ggml).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QFormat {
    /// ggml Q4_1.
    Q4_1,
    /// ggml Q8_0.
    Q8_0,
    /// ggml Q5_0.
    Q5_0,
    /// ggml Q4_K (256-weight super-blocks).
    Q4_K,
    /// ggml Q6_K (256-weight super-blocks).
    Q6_K,
    /// Plain little-endian f32.
    F32,
}

impl QFormat {
    /// Weights per block: [`BLOCK`], or [`QK_K`] for the K-quants.
    pub fn block_len(self) -> usize {
        match self {
            QFormat::Q4_K | QFormat::Q6_K => QK_K,
            _ => BLOCK,
        }
    }

    /// Bytes per block of [`QFormat::block_len`] weights in a GGUF file.
    pub fn block_bytes(self) -> usize {
        self.qs_bytes() + 2 * self.scales()
    }

    /// Bytes per block as kept in memory: everything but the f16 scales, which are kept apart.
    fn qs_bytes(self) -> usize {
        match self {
            QFormat::Q4_1 => BLOCK / 2,
            QFormat::Q8_0 => BLOCK,
            QFormat::Q5_0 => 4 + BLOCK / 2,
            QFormat::Q4_K => 12 + QK_K / 2,
            QFormat::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16,
            QFormat::F32 => 4 * BLOCK,
        }
    }

    /// f16 scales per block (`d`, `m` for Q4_1; `d`, `dmin` for Q4_K; `d` for the others).
    fn scales(self) -> usize {
        match self {
            QFormat::Q4_1 | QFormat::Q4_K => 2,
            QFormat::Q8_0 | QFormat::Q5_0 | QFormat::Q6_K => 1,
            QFormat::F32 => 0,
        }
    }

    /// Byte offset of the f16 scales inside a file block (Q6_K stores its `d` last).
    fn scales_offset(self) -> usize {
        match self {
            QFormat::Q6_K => self.qs_bytes(),
            _ => 0,
        }
    }
}

/// The instruction set a kernel call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F/BW + FMA + F16C.
    Avx512,
}

impl Isa {
    /// The fastest instruction set this CPU supports.
    pub fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            if avx2
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run kernels of this instruction set.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => matches!(Isa::best(), Isa::Avx2 | Isa::Avx512),
            Isa::Avx512 => Isa::best() == Isa::Avx512,
        }
    }
}

/// A weight matrix `[rows (out), cols (in)]` stored as row-major blocks of
/// [`QFormat::block_len`] weights.
///
/// The quants of each block are kept as in the file, its f16 scales in a separate array (the
/// kernels convert one output row's scales to f32 at a time, with wide conversions, and then
/// broadcast them from L1), so memory holds and decoding reads exactly the file's bytes.
#[derive(Clone, PartialEq)]
pub struct QWeight {
    format: QFormat,
    rows: usize,
    cols: usize,
    /// Quants, `rows · cols / block_len` blocks of `format.qs_bytes()`.
    qs: Vec<u8>,
    /// f16 scales (bits), `format.scales()` per block.
    scales: Vec<u16>,
}

impl std::fmt::Debug for QWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QWeight")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl QWeight {
    /// Wraps raw blocks (`rows · cols / format.block_len()` blocks of `format`, row-major, as
    /// in a GGUF file).
    pub fn from_raw(format: QFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<QWeight> {
        let want = Self::raw_len(format, rows, cols)?;
        if want != data.len() {
            return Err(ModelError::Format(format!(
                "quantized weight [{rows}, {cols}] in {format:?}: {} bytes, expected {want}",
                data.len()
            )));
        }
        Self::read_from(format, rows, cols, &mut data.as_slice())
    }

    /// Bytes of the raw blocks of a `[rows, cols]` weight in `format`; an error when `cols` is
    /// not a positive multiple of the block length (or the size overflows).
    pub fn raw_len(format: QFormat, rows: usize, cols: usize) -> Result<usize> {
        let bl = format.block_len();
        if cols == 0 || rows == 0 || !cols.is_multiple_of(bl) {
            return Err(ModelError::Format(format!(
                "quantized weight [{rows}, {cols}] in {format:?}: columns must be a positive \
                 multiple of {bl}"
            )));
        }
        rows.checked_mul(cols / bl)
            .and_then(|b| b.checked_mul(format.block_bytes()))
            .ok_or_else(|| {
                ModelError::Format(format!(
                    "quantized weight [{rows}, {cols}] in {format:?} is too large"
                ))
            })
    }

    /// Reads exactly [`QWeight::raw_len`] bytes of raw blocks from `reader` (e.g. a GGUF file
    /// positioned at the tensor), splitting them into quants and scales as they stream in: the
    /// raw bytes are never held whole, so loading a model costs its blocks and a 64 KiB buffer.
    pub fn read_from(
        format: QFormat,
        rows: usize,
        cols: usize,
        reader: &mut impl std::io::Read,
    ) -> Result<QWeight> {
        let total = Self::raw_len(format, rows, cols)?;
        let bb = format.block_bytes();
        let (nsc, at) = (format.scales(), format.scales_offset());
        let nb = total / bb;
        let mut qs = Vec::with_capacity(nb * format.qs_bytes());
        let mut scales = Vec::with_capacity(nb * nsc);
        let per_chunk = (64 * 1024 / bb).max(1);
        let mut buf = vec![0u8; per_chunk * bb];
        let mut left = nb;
        while left > 0 {
            let n = left.min(per_chunk);
            let chunk = &mut buf[..n * bb];
            reader.read_exact(chunk).map_err(|e| {
                ModelError::malformed(
                    format!(
                        "quantized weight [{rows}, {cols}] in {format:?}: only {} of {total} \
                         bytes could be read",
                        total - left * bb
                    ),
                    e,
                )
            })?;
            for blk in chunk.chunks_exact(bb) {
                let (head, rest) = blk.split_at(at);
                let (sc, tail) = rest.split_at(2 * nsc);
                scales.extend(sc.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
                qs.extend_from_slice(head);
                qs.extend_from_slice(tail);
            }
            left -= n;
        }
        Ok(QWeight {
            format,
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// An f32 weight `[rows, cols]` (row-major `values`) in the [`QFormat::F32`] layout.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<QWeight> {
        if values.len() != rows.saturating_mul(cols) {
            return Err(ModelError::Format(format!(
                "{} values for an f32 weight [{rows}, {cols}]",
                values.len()
            )));
        }
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        QWeight::from_raw(QFormat::F32, rows, cols, data)
    }

    /// The block format.
    pub fn format(&self) -> QFormat {
        self.format
    }

    /// Output features (rows of the weight).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (columns of the weight).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held in memory (quants and f16 scales).
    pub fn size_in_bytes(&self) -> usize {
        self.qs.len() + 2 * self.scales.len()
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_len() * self.format.qs_bytes()
    }

    fn row_scales(&self) -> usize {
        self.cols / self.format.block_len() * self.format.scales()
    }

    /// The whole matrix as row-major f32, decoded by the portable code (the reference the
    /// kernels are tested against).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize_range(Isa::Scalar, 0, self.rows, &mut out);
        out
    }

    /// Rows `start..end` as row-major f32 into `out` (`(end - start) · cols` values), with the
    /// fastest instruction set this CPU runs (the same values as [`QWeight::dequantize`]).
    ///
    /// # Panics
    /// If the range is out of bounds or `out` has the wrong length.
    pub fn dequantize_rows_into(&self, start: usize, end: usize, out: &mut [f32]) {
        assert!(start <= end && end <= self.rows && out.len() == (end - start) * self.cols);
        self.dequantize_range(Isa::best(), start, end, out);
    }

    /// [`QWeight::dequantize_rows_into`] with a chosen instruction set; an unsupported one, a
    /// range out of bounds or an `out` of the wrong length is an error.
    pub fn dequantize_rows_with(
        &self,
        isa: Isa,
        start: usize,
        end: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if start > end || end > self.rows || out.len() != (end - start) * self.cols {
            return Err(ModelError::Format(format!(
                "dequantizing rows {start}..{end} of [{}, {}] into {} values",
                self.rows,
                self.cols,
                out.len()
            )));
        }
        if !isa.supported() {
            return Err(ModelError::Format(format!(
                "this CPU cannot run {isa:?} kernels"
            )));
        }
        self.dequantize_range(isa, start, end, out);
        Ok(())
    }

    /// Rows `start..end` into `out` (checked by the callers; `isa` supported).
    fn dequantize_range(&self, isa: Isa, start: usize, end: usize, out: &mut [f32]) {
        let (qb, ns, bl) = (
            self.format.qs_bytes(),
            self.format.scales(),
            self.format.block_len(),
        );
        let first = start * self.cols / bl;
        let nblocks = (end - start) * self.cols / bl;
        let qs = &self.qs[first * qb..(first + nblocks) * qb];
        let sc: Vec<f32> = self.scales[first * ns..(first + nblocks) * ns]
            .iter()
            .map(|s| f16::from_bits(*s).to_f32())
            .collect();
        match isa {
            // SAFETY: `isa` is supported (checked by the callers); `qs`, `sc` and `out` hold
            // `nblocks` blocks of quants, scales and values.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { simd::dequant512(self.format, qs, &sc, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { simd::dequant256(self.format, qs, &sc, out) },
            _ => {
                for (b, w) in out.chunks_exact_mut(bl).enumerate() {
                    decode_scalar(
                        self.format,
                        &qs[b * qb..(b + 1) * qb],
                        &sc[b * ns..(b + 1) * ns],
                        w,
                    );
                }
            }
        }
    }

    /// Undoes llama.cpp's `permute(w, n_head)` on the rows, like [`crate::gguf::reverse_permute`]:
    /// HF row `h·hd + two·half + i` is stored at row `h·hd + 2·i + two`.
    pub fn reverse_permute(&self, n_head: usize) -> Result<QWeight> {
        if n_head == 0 || !self.rows.is_multiple_of(2 * n_head) {
            return Err(ModelError::Format(format!(
                "cannot un-permute a weight of {} rows over {n_head} heads",
                self.rows
            )));
        }
        let hd = self.rows / n_head;
        let half = hd / 2;
        let (rb, rs) = (self.row_bytes(), self.row_scales());
        let mut qs = Vec::with_capacity(self.qs.len());
        let mut scales = Vec::with_capacity(self.scales.len());
        for h in 0..n_head {
            for two in 0..2 {
                for i in 0..half {
                    let src = h * hd + 2 * i + two;
                    qs.extend_from_slice(&self.qs[src * rb..(src + 1) * rb]);
                    scales.extend_from_slice(&self.scales[src * rs..(src + 1) * rs]);
                }
            }
        }
        Ok(QWeight {
            format: self.format,
            rows: self.rows,
            cols: self.cols,
            qs,
            scales,
        })
    }

    /// `y[n, rows] = x[n, cols] · Wᵀ` with the fastest kernel this CPU runs, f32 activations.
    pub fn matmul_t(&self, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_t_with(Isa::best(), x, n, y)
    }

    /// [`QWeight::matmul_t`] with a chosen instruction set (an unsupported one is an error):
    /// the f32 reference path, which only sums in another order than the dequantized product.
    pub fn matmul_t_with(&self, isa: Isa, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        self.check_product(isa, x, n, y)?;
        let out = OutPtr(y.as_mut_ptr());
        self.par_rows(n, |start, end| {
            let mut g = 0;
            while g < n {
                let group = (n - g).min(group_max(isa));
                let xs = &x[g * self.cols..(g + group) * self.cols];
                // SAFETY: each chunk writes only its own output columns `start..end` of rows
                // `g..g + group` of `y`, which has `n * rows` values (checked above).
                unsafe { self.rows_kernel(isa, xs, group, start, end, out.at(g * self.rows)) };
                g += group;
            }
        });
        Ok(())
    }

    /// `y[n, rows] = x[n, cols] · Wᵀ` with the activations quantized to 8 bits (see the
    /// `q8` module) and the fastest integer kernel this CPU runs; F32 weights take
    /// [`QWeight::matmul_t`].
    pub fn matmul_t_q8(&self, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        self.matmul_t_q8_with(Isa::best(), x, n, y)
    }

    /// [`QWeight::matmul_t_q8`] with a chosen instruction set (an unsupported one is an error).
    /// The quantized activations and each block's integer sums are the same on every
    /// instruction set; only the f32 accumulation of the blocks differs in order.
    pub fn matmul_t_q8_with(&self, isa: Isa, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
        self.check_product(isa, x, n, y)?;
        if self.format == QFormat::F32 {
            return self.matmul_t_with(isa, x, n, y);
        }
        if n == 0 {
            return Ok(());
        }
        let q = q8::Q8Rows::quantize(self.format, x, n, self.cols);
        self.product_q8(isa, &q, n, y);
        Ok(())
    }

    /// `y = a · Wᵀ` for `n` quantized activation rows `q` (`y` of `n · rows` values, `isa`
    /// supported, checked by the callers).
    fn product_q8(&self, isa: Isa, q: &q8::Q8Rows, n: usize, y: &mut [f32]) {
        if q8::tiles_apply(isa, self.format, n) {
            let out = OutPtr(y.as_mut_ptr());
            self.par_rows_by(n, TILE_ROWS, |start, end| {
                // SAFETY: as in `matmul_t_with`, each chunk writes only its own outputs; the
                // chunks are whole tiles of 16 rows (or end the weight).
                unsafe {
                    let args = q.args(0, self.args(start, end, None, out.at(0)));
                    q8::dispatch_tiles(self.format, n, &args);
                }
            });
            return;
        }
        let group = q8::group_max(isa);
        // With more rows than one group, a tile of weight rows stays in cache for all groups.
        let tile = if n > group { Q8_TILE_ROWS } else { usize::MAX };
        let out = OutPtr(y.as_mut_ptr());
        self.par_rows(n, |start, end| {
            let mut t = start;
            while t < end {
                let te = t.saturating_add(tile).min(end);
                let mut g = 0;
                while g < n {
                    let m = (n - g).min(group);
                    // SAFETY: as in `matmul_t_with`, each chunk writes only its own outputs.
                    unsafe {
                        let args = q.args(g, self.args(t, te, None, out.at(g * self.rows)));
                        q8::dispatch(isa, self.format, m, &args);
                    }
                    g += m;
                }
                t = te;
            }
        });
    }

    /// [`QWeight::matmul_t`] or [`QWeight::matmul_t_q8`] by `precision`.
    pub fn matmul_t_as(
        &self,
        precision: ActivationPrecision,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<()> {
        match precision {
            ActivationPrecision::F32 => self.matmul_t(x, n, y),
            ActivationPrecision::Int8 => self.matmul_t_q8(x, n, y),
        }
    }

    /// The shapes of a product and the instruction set, checked.
    fn check_product(&self, isa: Isa, x: &[f32], n: usize, y: &[f32]) -> Result<()> {
        if x.len() != n * self.cols || y.len() != n * self.rows {
            return Err(ModelError::Format(format!(
                "quantized matmul: x has {} values, y {}, for {n} rows of [{}, {}]",
                x.len(),
                y.len(),
                self.rows,
                self.cols
            )));
        }
        if !isa.supported() {
            return Err(ModelError::Format(format!(
                "this CPU cannot run {isa:?} kernels"
            )));
        }
        Ok(())
    }

    /// Runs `run(start, end)` over chunks of output rows, in parallel on rayon's pool.
    fn par_rows(&self, n: usize, run: impl Fn(usize, usize) + Sync) {
        self.par_rows_by(n, 4, run)
    }

    /// [`QWeight::par_rows`] with chunks of a multiple of `multiple` rows (but the last).
    fn par_rows_by(&self, n: usize, multiple: usize, run: impl Fn(usize, usize) + Sync) {
        if n == 0 {
            return;
        }
        let threads = rayon::current_num_threads().max(1);
        // A few chunks per thread, each at least 16 rows, so rayon's overhead stays small.
        let chunk = self
            .rows
            .div_ceil(threads * 4)
            .max(16)
            .next_multiple_of(multiple);
        let starts: Vec<usize> = (0..self.rows).step_by(chunk).collect();
        let one = |start: usize| run(start, (start + chunk).min(self.rows));
        if starts.len() == 1 {
            one(0);
        } else {
            starts.into_par_iter().for_each(one);
        }
    }

    /// Kernel operands for output rows `start..end`, activations `x` (if f32), outputs `y`.
    ///
    /// # Safety
    /// `y` must be valid for writes at `j * self.rows + o` for the kernel's rows `j` and
    /// `o` in `start..end`.
    unsafe fn args(&self, start: usize, end: usize, x: Option<&[f32]>, y: *mut f32) -> Args {
        let (rb, rs) = (self.row_bytes(), self.row_scales());
        Args {
            w: self.qs[start * rb..end * rb].as_ptr(),
            row_bytes: rb,
            s: self.scales[start * rs..end * rs].as_ptr(),
            row_scales: rs,
            nrows: end - start,
            nblocks: self.cols / self.format.block_len(),
            x: x.map_or(std::ptr::null(), |x| x.as_ptr()),
            cols: self.cols,
            y: y.add(start),
            y_stride: self.rows,
        }
    }

    /// Output rows `start..end` for `n` activation rows `x` (`n ≤ group_max(isa)`), written to
    /// `y[j * self.rows + o]`.
    ///
    /// # Safety
    /// `y` must be valid for writes at those indices; `isa` must be supported.
    unsafe fn rows_kernel(
        &self,
        isa: Isa,
        x: &[f32],
        n: usize,
        start: usize,
        end: usize,
        y: *mut f32,
    ) {
        let args = self.args(start, end, Some(x), y);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => simd::dispatch512(self.format, n, &args),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => simd::dispatch256(self.format, n, &args),
            _ => scalar_rows(self.format, n, &args),
        }
    }
}

/// Weight rows per tile of the integer kernels when the activation rows need several groups.
const Q8_TILE_ROWS: usize = 32;

/// Weight rows per tile of the K-quants' tile kernels (`q8::dispatch_tiles`).
const TILE_ROWS: usize = 16;

/// How the activations of a product with blocks are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivationPrecision {
    /// f32 activations times weights decoded to f32: the reference, exact up to summation
    /// order (training and anything tracking gradients always uses it).
    F32,
    /// Activations quantized to 8 bits per product and integer dot products, as llama.cpp
    /// (see [`QWeight::matmul_t_q8`]).
    Int8,
}

impl ActivationPrecision {
    /// The inference default: [`ActivationPrecision::Int8`], or
    /// [`ActivationPrecision::F32`] when the environment variable `SQLORA_F32_ACTIVATIONS` is
    /// set (to anything but empty or `0`; read once per process).
    pub fn inference_default() -> ActivationPrecision {
        static DEFAULT: std::sync::OnceLock<ActivationPrecision> = std::sync::OnceLock::new();
        *DEFAULT.get_or_init(|| {
            let f32 =
                std::env::var("SQLORA_F32_ACTIVATIONS").is_ok_and(|v| !v.is_empty() && v != "0");
            if f32 {
                ActivationPrecision::F32
            } else {
                ActivationPrecision::Int8
            }
        })
    }
}

/// `x · Wᵀ` for a 2-D f32 CPU tensor `x` `[n, cols]` that tracks no gradient, with
/// activations of `precision`: for [`ActivationPrecision::F32`] `1 <= n <= MAX_ROWS`, for
/// [`ActivationPrecision::Int8`] any `n >= 1` (the integer kernels also beat dequantizing tiles
/// for a gemm on prompts). `Ok(None)` when `x` is anything else (the caller then uses its f32
/// weight or tiles).
pub fn forward_2d(
    w: &QWeight,
    x: &Tensor,
    precision: ActivationPrecision,
) -> candle_core::Result<Option<Tensor>> {
    let (n, cols) = x.dims2()?;
    let max_rows = match precision {
        ActivationPrecision::F32 => MAX_ROWS,
        ActivationPrecision::Int8 => usize::MAX,
    };
    if n == 0
        || n > max_rows
        || cols != w.cols
        || x.dtype() != DType::F32
        || !x.device().is_cpu()
        || x.track_op()
    {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let mut y = vec![0f32; n * w.rows];
    {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        let Some((a, b)) = layout.contiguous_offsets() else {
            return Ok(None);
        };
        let data = cpu.as_slice::<f32>()?;
        let Some(data) = data.get(a..b) else {
            return Ok(None);
        };
        w.matmul_t_as(precision, data, n, &mut y)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    }
    Ok(Some(Tensor::from_vec(y, (n, w.rows), &Device::Cpu)?))
}

/// Activation rows handled together (the accumulators must fit in registers).
fn group_max(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2 => 4,
        Isa::Scalar => MAX_ROWS,
    }
}

/// A raw output pointer shared by the rayon tasks, which write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint indices (see `matmul_t_with`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// One kernel call's operands.
#[derive(Clone, Copy)]
struct Args {
    /// First block of the first output row.
    w: *const u8,
    row_bytes: usize,
    /// f16 scales of the first block of the first output row.
    s: *const u16,
    row_scales: usize,
    nrows: usize,
    nblocks: usize,
    /// Activation row `j` starts at `x + j * cols`.
    x: *const f32,
    cols: usize,
    /// Output row `o` of activation row `j` is `y + j * y_stride + o`.
    y: *mut f32,
    y_stride: usize,
}

/// Dequantizes one block (quants `qs`, f32 scales `sc`) into `out` (`format.block_len()`
/// values), like ggml's `dequantize_row_*`.
fn decode_scalar(format: QFormat, qs: &[u8], sc: &[f32], out: &mut [f32]) {
    match format {
        QFormat::Q4_1 => {
            let (d, m) = (sc[0], sc[1]);
            for i in 0..BLOCK / 2 {
                let q = qs[i];
                out[i] = (q & 0x0F) as f32 * d + m;
                out[i + BLOCK / 2] = (q >> 4) as f32 * d + m;
            }
        }
        QFormat::Q8_0 => {
            let d = sc[0];
            for i in 0..BLOCK {
                out[i] = (qs[i] as i8) as f32 * d;
            }
        }
        QFormat::Q5_0 => {
            let d = sc[0];
            let qh = u32::from_le_bytes([qs[0], qs[1], qs[2], qs[3]]);
            for i in 0..BLOCK / 2 {
                let q = qs[4 + i];
                let h0 = ((qh >> i) << 4) & 0x10;
                let h1 = (qh >> (i + 12)) & 0x10;
                out[i] = (((q & 0x0F) as u32 | h0) as i32 - 16) as f32 * d;
                out[i + BLOCK / 2] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
            }
        }
        QFormat::Q4_K | QFormat::Q6_K => {
            let ks = k_scales(format, qs, sc);
            for (s, o) in out.chunks_exact_mut(BLOCK).enumerate() {
                decode_sub_scalar(format, qs, &ks, s, o);
            }
        }
        QFormat::F32 => {
            for (o, c) in out.iter_mut().zip(qs.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}

/// The f32 sub-block scales of one K-quant super-block (quants `qs` as kept, f32 super-block
/// scales `sc`): Q4_K `[d·sc_0, …, d·sc_7, dmin·m_0, …, dmin·m_7]` (ggml's
/// `get_scale_min_k4`), Q6_K `d·sc_0, …, d·sc_15` (one per 16 weights).
#[inline]
fn k_scales(format: QFormat, qs: &[u8], sc: &[f32]) -> [f32; 16] {
    let mut ks = [0f32; 16];
    match format {
        QFormat::Q4_K => {
            let sm = q8::q4k_scale_min(&qs[..12]);
            for j in 0..8 {
                ks[j] = sc[0] * sm[j] as f32;
                ks[8 + j] = sc[1] * sm[8 + j] as f32;
            }
        }
        QFormat::Q6_K => {
            for (k, s) in ks.iter_mut().zip(&qs[QK_K / 2 + QK_K / 4..]) {
                *k = sc[0] * (*s as i8) as f32;
            }
        }
        _ => {}
    }
    ks
}

/// Dequantizes sub-block `s` (weights `32s..32s + 32`) of one K-quant super-block.
#[inline]
fn decode_sub_scalar(format: QFormat, qs: &[u8], ks: &[f32; 16], s: usize, out: &mut [f32]) {
    match format {
        QFormat::Q4_K => {
            let q = &qs[12 + 32 * (s / 2)..12 + 32 * (s / 2) + 32];
            let shift = 4 * (s % 2);
            let (d, m) = (ks[s], ks[8 + s]);
            for (o, b) in out.iter_mut().zip(q) {
                *o = d * ((b >> shift) & 0x0F) as f32 - m;
            }
        }
        QFormat::Q6_K => {
            let (half, k) = (s / 4, s % 4);
            let ql = &qs[64 * half + 32 * (k % 2)..][..32];
            let qh = &qs[QK_K / 2 + 32 * half..][..32];
            let (ls, hs) = (4 * (k / 2), 2 * k);
            for l in 0..32 {
                let q = ((ql[l] >> ls) & 0x0F) | (((qh[l] >> hs) & 3) << 4);
                out[l] = ks[8 * half + 2 * k + l / 16] * (q as i32 - 32) as f32;
            }
        }
        _ => unreachable!("not a K-quant: {format:?}"),
    }
}

/// The portable kernel.
///
/// # Safety
/// `a` must describe valid buffers (see [`QWeight::rows_kernel`]).
unsafe fn scalar_rows(format: QFormat, n: usize, a: &Args) {
    let (qb, ns, bl) = (format.qs_bytes(), format.scales(), format.block_len());
    let x = std::slice::from_raw_parts(a.x, n * a.cols);
    let mut w = [0f32; QK_K];
    let w = &mut w[..bl];
    let mut acc = [0f32; MAX_ROWS];
    let mut sc = vec![0f32; a.row_scales];
    for o in 0..a.nrows {
        let row = std::slice::from_raw_parts(a.w.add(o * a.row_bytes), a.row_bytes);
        let bits = std::slice::from_raw_parts(a.s.add(o * a.row_scales), a.row_scales);
        for (d, s) in sc.iter_mut().zip(bits) {
            *d = f16::from_bits(*s).to_f32();
        }
        acc[..n].fill(0.0);
        for (b, blk) in row.chunks_exact(qb).enumerate() {
            decode_scalar(format, blk, &sc[b * ns..(b + 1) * ns], w);
            for (j, s) in acc[..n].iter_mut().enumerate() {
                let xb = &x[j * a.cols + b * bl..j * a.cols + (b + 1) * bl];
                *s += w.iter().zip(xb).map(|(p, q)| p * q).sum::<f32>();
            }
        }
        for (j, s) in acc[..n].iter().enumerate() {
            *a.y.add(j * a.y_stride + o) = *s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX-512 and AVX2 kernels: one block is dequantized into registers, then multiplied with
    //! `N` activation rows, two accumulators per row.

    use std::arch::x86_64::*;

    use super::{k_scales, scalar_rows, Args, QFormat, BLOCK, QK_K};

    /// Bytes of quants the kernels ask for ahead of the row they multiply: the hardware
    /// prefetcher alone left them waiting on memory (measured: all of SmolLM2's weights at
    /// batch 1 took 20 ms without, 11-12 ms with a 1-2 KiB lead; 4-8 KiB was slower).
    const PREFETCH_BYTES: usize = 2048;

    /// Prefetches the quants and scales of output row `o` (if it exists).
    #[inline]
    #[target_feature(enable = "sse")]
    pub(super) unsafe fn prefetch_row(a: &Args, o: usize) {
        if o < a.nrows {
            let p = a.w.add(o * a.row_bytes);
            let mut off = 0;
            while off < a.row_bytes {
                _mm_prefetch::<_MM_HINT_T0>(p.add(off) as *const i8);
                off += 64;
            }
            let s = a.s.add(o * a.row_scales) as *const u8;
            let mut off = 0;
            while off < a.row_scales * 2 {
                _mm_prefetch::<_MM_HINT_T0>(s.add(off) as *const i8);
                off += 64;
            }
        }
    }

    /// Rows ahead to prefetch, and the first call: the rows before that lead.
    #[inline]
    #[target_feature(enable = "sse")]
    pub(super) unsafe fn prefetch_start(a: &Args) -> usize {
        let ahead = PREFETCH_BYTES.div_ceil(a.row_bytes.max(1));
        for o in 0..ahead {
            prefetch_row(a, o);
        }
        ahead
    }

    /// `dst[i] = f32(src[i])` for `dst.len()` f16 values, 8 at a time.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn f16_row(src: *const u16, dst: &mut [f32]) {
        let n = dst.len();
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.add(i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        if i < n {
            let mut tail = [0u16; 8];
            std::ptr::copy_nonoverlapping(src.add(i), tail.as_mut_ptr(), n - i);
            let mut out = [0f32; 8];
            let h = _mm_loadu_si128(tail.as_ptr() as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr(), _mm256_cvtph_ps(h));
            dst[i..].copy_from_slice(&out[..n - i]);
        }
    }

    /// Decodes whole blocks: `qs` and `sc` (f32 scales) of `out.len() / block_len` blocks.
    ///
    /// # Safety
    /// AVX-512F/BW, FMA and F16C must be available; the slices must hold that many blocks.
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    pub(super) unsafe fn dequant512(fmt: QFormat, qs: &[u8], sc: &[f32], out: &mut [f32]) {
        let (qb, ns, bl) = (fmt.qs_bytes(), fmt.scales(), fmt.block_len());
        for (b, w) in out.chunks_exact_mut(bl).enumerate() {
            let p = qs.as_ptr().add(b * qb);
            let o = w.as_mut_ptr();
            if bl == BLOCK {
                let (w0, w1) = block512(fmt, p, sc.as_ptr().add(b * ns));
                _mm512_storeu_ps(o, w0);
                _mm512_storeu_ps(o.add(16), w1);
            } else {
                let ks = k_scales(fmt, &qs[b * qb..(b + 1) * qb], &sc[b * ns..(b + 1) * ns]);
                for s in 0..bl / BLOCK {
                    let (w0, w1) = sub512(fmt, p, &ks, s);
                    _mm512_storeu_ps(o.add(s * BLOCK), w0);
                    _mm512_storeu_ps(o.add(s * BLOCK + 16), w1);
                }
            }
        }
    }

    /// [`dequant512`] with AVX2.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; the slices must hold that many blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dequant256(fmt: QFormat, qs: &[u8], sc: &[f32], out: &mut [f32]) {
        let (qb, ns, bl) = (fmt.qs_bytes(), fmt.scales(), fmt.block_len());
        let store = |o: *mut f32, w: [__m256; 4]| {
            for (i, v) in w.into_iter().enumerate() {
                _mm256_storeu_ps(o.add(8 * i), v);
            }
        };
        for (b, w) in out.chunks_exact_mut(bl).enumerate() {
            let p = qs.as_ptr().add(b * qb);
            let o = w.as_mut_ptr();
            if bl == BLOCK {
                store(o, block256(fmt, p, sc.as_ptr().add(b * ns)));
            } else {
                let ks = k_scales(fmt, &qs[b * qb..(b + 1) * qb], &sc[b * ns..(b + 1) * ns]);
                for s in 0..bl / BLOCK {
                    store(o.add(s * BLOCK), sub256(fmt, p, &ks, s));
                }
            }
        }
    }

    macro_rules! by_rows {
        ($f:ident, $fmt:expr, $n:expr, $a:expr, [$($k:literal),*]) => {
            match $n {
                $($k => $f::<$k>($fmt, $a),)*
                _ => scalar_rows($fmt, $n, $a),
            }
        };
    }

    /// # Safety
    /// AVX-512F/BW, FMA and F16C must be available; `a` valid; `n <= 8`.
    pub(super) unsafe fn dispatch512(fmt: QFormat, n: usize, a: &Args) {
        by_rows!(rows512, fmt, n, a, [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available; `a` valid; `n <= 4`.
    pub(super) unsafe fn dispatch256(fmt: QFormat, n: usize, a: &Args) {
        by_rows!(rows256, fmt, n, a, [1, 2, 3, 4])
    }

    /// Elements 0..16 and 16..32 of one block.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn block512(fmt: QFormat, p: *const u8, s: *const f32) -> (__m512, __m512) {
        match fmt {
            QFormat::Q4_1 => q4_1_512(p, s),
            QFormat::Q8_0 => q8_0_512(p, s),
            QFormat::Q5_0 => q5_0_512(p, s),
            QFormat::F32 => f32_512(p, s),
            QFormat::Q4_K | QFormat::Q6_K => unreachable!("K-quants decode by sub-block"),
        }
    }

    /// [`block512`] for Q4_1 (small, so it inlines into the row loops).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn q4_1_512(p: *const u8, s: *const f32) -> (__m512, __m512) {
        let d = _mm512_set1_ps(*s);
        let m = _mm512_set1_ps(*s.add(1));
        let qs = _mm_loadu_si128(p as *const __m128i);
        let mask = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(qs, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
        let lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo));
        let hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi));
        (_mm512_fmadd_ps(lo, d, m), _mm512_fmadd_ps(hi, d, m))
    }

    /// [`block512`] for Q8_0.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn q8_0_512(p: *const u8, s: *const f32) -> (__m512, __m512) {
        let d = _mm512_set1_ps(*s);
        let q0 = _mm_loadu_si128(p as *const __m128i);
        let q1 = _mm_loadu_si128(p.add(16) as *const __m128i);
        let q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0));
        let q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1));
        (_mm512_mul_ps(q0, d), _mm512_mul_ps(q1, d))
    }

    /// [`block512`] for Q5_0.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn q5_0_512(p: *const u8, s: *const f32) -> (__m512, __m512) {
        let d = _mm512_set1_ps(*s);
        let qh = (p as *const u32).read_unaligned();
        let qs = _mm_loadu_si128(p.add(4) as *const __m128i);
        let mask = _mm_set1_epi8(0x0F);
        let lo = _mm512_cvtepu8_epi32(_mm_and_si128(qs, mask));
        let hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), mask));
        let (s16, b5) = (_mm512_set1_epi32(16), _mm512_set1_epi32(0x10));
        // The fifth bit: bit `i` of `qh` for element `i`; then `q - 16`.
        let lo = _mm512_mask_or_epi32(lo, (qh & 0xFFFF) as __mmask16, lo, b5);
        let hi = _mm512_mask_or_epi32(hi, (qh >> 16) as __mmask16, hi, b5);
        let lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, s16));
        let hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, s16));
        (_mm512_mul_ps(lo, d), _mm512_mul_ps(hi, d))
    }

    /// [`block512`] for F32 rows.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn f32_512(p: *const u8, _s: *const f32) -> (__m512, __m512) {
        (
            _mm512_loadu_ps(p as *const f32),
            _mm512_loadu_ps(p.add(64) as *const f32),
        )
    }

    /// Elements 0..16 and 16..32 of sub-block `s` of one K-quant super-block (quants `p`,
    /// sub-block scales `ks` from [`k_scales`]).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn sub512(fmt: QFormat, p: *const u8, ks: &[f32; 16], s: usize) -> (__m512, __m512) {
        match fmt {
            QFormat::Q4_K => q4k_sub512(p, ks, s),
            QFormat::Q6_K => q6k_sub512(p, ks, s),
            _ => unreachable!("not a K-quant: {fmt:?}"),
        }
    }

    /// [`sub512`] for Q4_K (small, so it inlines into the row loops).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn q4k_sub512(p: *const u8, ks: &[f32; 16], s: usize) -> (__m512, __m512) {
        let mask = _mm_set1_epi8(0x0F);
        let q = p.add(12 + 32 * (s / 2));
        let shift = _mm_cvtsi32_si128(4 * (s % 2) as i32);
        let nib = |v: __m128i| {
            let v = _mm_and_si128(_mm_srl_epi16(v, shift), mask);
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))
        };
        let d = _mm512_set1_ps(ks[s]);
        let m = _mm512_set1_ps(-ks[8 + s]);
        let q0 = nib(_mm_loadu_si128(q as *const __m128i));
        let q1 = nib(_mm_loadu_si128(q.add(16) as *const __m128i));
        (_mm512_fmadd_ps(q0, d, m), _mm512_fmadd_ps(q1, d, m))
    }

    /// [`sub512`] for Q6_K.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn q6k_sub512(p: *const u8, ks: &[f32; 16], s: usize) -> (__m512, __m512) {
        let mask = _mm_set1_epi8(0x0F);
        let (half, k) = (s / 4, s % 4);
        let ql = p.add(64 * half + 32 * (k % 2));
        let qh = p.add(QK_K / 2 + 32 * half);
        let ls = _mm_cvtsi32_si128(4 * (k / 2) as i32);
        let hs = _mm_cvtsi32_si128(2 * k as i32);
        let (three, off) = (_mm_set1_epi8(3), _mm_set1_epi8(32));
        let q = |i: usize| {
            let l = _mm_loadu_si128(ql.add(16 * i) as *const __m128i);
            let h = _mm_loadu_si128(qh.add(16 * i) as *const __m128i);
            let l = _mm_and_si128(_mm_srl_epi16(l, ls), mask);
            let h = _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(h, hs), three), 4);
            let v = _mm_sub_epi8(_mm_or_si128(l, h), off);
            let d = _mm512_set1_ps(ks[8 * half + 2 * k + i]);
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)), d)
        };
        (q(0), q(1))
    }

    /// `acc[j] += w · x[j]` for the 32 weights `w0, w1` and `N` activation rows at `xb`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn fma512<const N: usize>(
        w0: __m512,
        w1: __m512,
        xb: *const f32,
        cols: usize,
        acc0: &mut [__m512; N],
        acc1: &mut [__m512; N],
    ) {
        for j in 0..N {
            let xj = xb.add(j * cols);
            acc0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xj), acc0[j]);
            acc1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xj.add(16)), acc1[j]);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
    unsafe fn rows512<const N: usize>(fmt: QFormat, a: &Args) {
        let (qb, ns, bl) = (fmt.qs_bytes(), fmt.scales(), fmt.block_len());
        let mut scales = vec![0f32; a.row_scales];
        let ahead = prefetch_start(a);
        for o in 0..a.nrows {
            let row = a.w.add(o * a.row_bytes);
            prefetch_row(a, o + ahead);
            f16_row(a.s.add(o * a.row_scales), &mut scales);
            let mut acc0 = [_mm512_setzero_ps(); N];
            let mut acc1 = [_mm512_setzero_ps(); N];
            if bl == BLOCK {
                let sc = scales.as_ptr();
                // One loop per format, each with its small block decoder inlined (a `match`
                // per block in the hot loop kept the decoder out of line: ~20% of decode).
                macro_rules! blocks {
                    ($decode:ident) => {
                        for b in 0..a.nblocks {
                            let (w0, w1) = $decode(row.add(b * qb), sc.add(b * ns));
                            fma512(w0, w1, a.x.add(b * BLOCK), a.cols, &mut acc0, &mut acc1);
                        }
                    };
                }
                match fmt {
                    QFormat::Q4_1 => blocks!(q4_1_512),
                    QFormat::Q8_0 => blocks!(q8_0_512),
                    QFormat::Q5_0 => blocks!(q5_0_512),
                    QFormat::F32 => blocks!(f32_512),
                    QFormat::Q4_K | QFormat::Q6_K => unreachable!("K-quants decode by sub-block"),
                }
            } else {
                macro_rules! super_blocks {
                    ($decode:ident) => {
                        for b in 0..a.nblocks {
                            let p = row.add(b * qb);
                            let blk = std::slice::from_raw_parts(p, qb);
                            let ks = k_scales(fmt, blk, &scales[b * ns..(b + 1) * ns]);
                            for s in 0..bl / BLOCK {
                                let (w0, w1) = $decode(p, &ks, s);
                                let xb = a.x.add(b * bl + s * BLOCK);
                                fma512(w0, w1, xb, a.cols, &mut acc0, &mut acc1);
                            }
                        }
                    };
                }
                match fmt {
                    QFormat::Q4_K => super_blocks!(q4k_sub512),
                    _ => super_blocks!(q6k_sub512),
                }
            }
            for j in 0..N {
                *a.y.add(j * a.y_stride + o) =
                    _mm512_reduce_add_ps(_mm512_add_ps(acc0[j], acc1[j]));
            }
        }
    }

    /// Elements 0..8, 8..16, 16..24, 24..32 of one block.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block256(fmt: QFormat, p: *const u8, s: *const f32) -> [__m256; 4] {
        match fmt {
            QFormat::Q4_1 => {
                let d = _mm256_set1_ps(*s);
                let m = _mm256_set1_ps(*s.add(1));
                let qs = _mm_loadu_si128(p as *const __m128i);
                let mask = _mm_set1_epi8(0x0F);
                let lo = _mm_and_si128(qs, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
                let cvt =
                    |v: __m128i| _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), d, m);
                [
                    cvt(lo),
                    cvt(_mm_srli_si128(lo, 8)),
                    cvt(hi),
                    cvt(_mm_srli_si128(hi, 8)),
                ]
            }
            QFormat::Q8_0 => {
                let d = _mm256_set1_ps(*s);
                let q0 = _mm_loadu_si128(p as *const __m128i);
                let q1 = _mm_loadu_si128(p.add(16) as *const __m128i);
                let cvt =
                    |v: __m128i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d);
                [
                    cvt(q0),
                    cvt(_mm_srli_si128(q0, 8)),
                    cvt(q1),
                    cvt(_mm_srli_si128(q1, 8)),
                ]
            }
            QFormat::Q5_0 => {
                let d = _mm256_set1_ps(*s);
                let qh = _mm256_set1_epi32((p as *const u32).read_unaligned() as i32);
                let qs = _mm_loadu_si128(p.add(4) as *const __m128i);
                let mask = _mm_set1_epi8(0x0F);
                let lo = _mm_and_si128(qs, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
                let (one, s16) = (_mm256_set1_epi32(1), _mm256_set1_epi32(16));
                // Element `i` (of 8 starting at `first`) gets bit `i` of `qh` as its fifth bit.
                let cvt = |v: __m128i, first: i32| {
                    let idx = _mm256_add_epi32(
                        _mm256_set1_epi32(first),
                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    );
                    let h = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, idx), one), 4);
                    let q = _mm256_sub_epi32(_mm256_or_si256(_mm256_cvtepu8_epi32(v), h), s16);
                    _mm256_mul_ps(_mm256_cvtepi32_ps(q), d)
                };
                [
                    cvt(lo, 0),
                    cvt(_mm_srli_si128(lo, 8), 8),
                    cvt(hi, 16),
                    cvt(_mm_srli_si128(hi, 8), 24),
                ]
            }
            QFormat::F32 => {
                let f = p as *const f32;
                [
                    _mm256_loadu_ps(f),
                    _mm256_loadu_ps(f.add(8)),
                    _mm256_loadu_ps(f.add(16)),
                    _mm256_loadu_ps(f.add(24)),
                ]
            }
            QFormat::Q4_K | QFormat::Q6_K => unreachable!("K-quants decode by sub-block"),
        }
    }

    /// Elements 0..8, 8..16, 16..24, 24..32 of sub-block `s` of one K-quant super-block.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn sub256(fmt: QFormat, p: *const u8, ks: &[f32; 16], s: usize) -> [__m256; 4] {
        let mask = _mm_set1_epi8(0x0F);
        match fmt {
            QFormat::Q4_K => {
                let q = p.add(12 + 32 * (s / 2));
                let shift = _mm_cvtsi32_si128(4 * (s % 2) as i32);
                let d = _mm256_set1_ps(ks[s]);
                let m = _mm256_set1_ps(-ks[8 + s]);
                let q0 = _mm_and_si128(
                    _mm_srl_epi16(_mm_loadu_si128(q as *const __m128i), shift),
                    mask,
                );
                let q1 = _mm_and_si128(
                    _mm_srl_epi16(_mm_loadu_si128(q.add(16) as *const __m128i), shift),
                    mask,
                );
                let cvt =
                    |v: __m128i| _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), d, m);
                [
                    cvt(q0),
                    cvt(_mm_srli_si128(q0, 8)),
                    cvt(q1),
                    cvt(_mm_srli_si128(q1, 8)),
                ]
            }
            QFormat::Q6_K => {
                let (half, k) = (s / 4, s % 4);
                let ql = p.add(64 * half + 32 * (k % 2));
                let qh = p.add(QK_K / 2 + 32 * half);
                let ls = _mm_cvtsi32_si128(4 * (k / 2) as i32);
                let hs = _mm_cvtsi32_si128(2 * k as i32);
                let (three, off) = (_mm_set1_epi8(3), _mm_set1_epi8(32));
                let q = |i: usize| {
                    let l = _mm_loadu_si128(ql.add(16 * i) as *const __m128i);
                    let h = _mm_loadu_si128(qh.add(16 * i) as *const __m128i);
                    let l = _mm_and_si128(_mm_srl_epi16(l, ls), mask);
                    let h = _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(h, hs), three), 4);
                    _mm_sub_epi8(_mm_or_si128(l, h), off)
                };
                let cvt = |v: __m128i, d: f32| {
                    _mm256_mul_ps(
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)),
                        _mm256_set1_ps(d),
                    )
                };
                let (q0, q1) = (q(0), q(1));
                let (d0, d1) = (ks[8 * half + 2 * k], ks[8 * half + 2 * k + 1]);
                [
                    cvt(q0, d0),
                    cvt(_mm_srli_si128(q0, 8), d0),
                    cvt(q1, d1),
                    cvt(_mm_srli_si128(q1, 8), d1),
                ]
            }
            _ => unreachable!("not a K-quant: {fmt:?}"),
        }
    }

    /// `acc[j] += w · x[j]` for the 32 weights `w` and `N` activation rows at `xb`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fma256<const N: usize>(
        w: [__m256; 4],
        xb: *const f32,
        cols: usize,
        acc0: &mut [__m256; N],
        acc1: &mut [__m256; N],
    ) {
        for j in 0..N {
            let xj = xb.add(j * cols);
            acc0[j] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xj), acc0[j]);
            acc1[j] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xj.add(8)), acc1[j]);
            acc0[j] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xj.add(16)), acc0[j]);
            acc1[j] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xj.add(24)), acc1[j]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows256<const N: usize>(fmt: QFormat, a: &Args) {
        let (qb, ns, bl) = (fmt.qs_bytes(), fmt.scales(), fmt.block_len());
        let mut scales = vec![0f32; a.row_scales];
        let ahead = prefetch_start(a);
        for o in 0..a.nrows {
            let row = a.w.add(o * a.row_bytes);
            prefetch_row(a, o + ahead);
            f16_row(a.s.add(o * a.row_scales), &mut scales);
            let mut acc0 = [_mm256_setzero_ps(); N];
            let mut acc1 = [_mm256_setzero_ps(); N];
            if bl == BLOCK {
                let sc = scales.as_ptr();
                for b in 0..a.nblocks {
                    let w = block256(fmt, row.add(b * qb), sc.add(b * ns));
                    fma256(w, a.x.add(b * BLOCK), a.cols, &mut acc0, &mut acc1);
                }
            } else {
                for b in 0..a.nblocks {
                    let p = row.add(b * qb);
                    let blk = std::slice::from_raw_parts(p, qb);
                    let ks = k_scales(fmt, blk, &scales[b * ns..(b + 1) * ns]);
                    for s in 0..bl / BLOCK {
                        let w = sub256(fmt, p, &ks, s);
                        let xb = a.x.add(b * bl + s * BLOCK);
                        fma256(w, xb, a.cols, &mut acc0, &mut acc1);
                    }
                }
            }
            for j in 0..N {
                let s = _mm256_add_ps(acc0[j], acc1[j]);
                let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                *a.y.add(j * a.y_stride + o) = _mm_cvtss_f32(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random blocks of `format` with scales like a real model's (|d| ~ 1e-2).
    pub(super) fn random(format: QFormat, rows: usize, cols: usize, seed: u64) -> QWeight {
        QWeight::from_raw(format, rows, cols, raw_blocks(format, rows, cols, seed)).unwrap()
    }

    /// Random raw blocks (as in a GGUF file) of a `[rows, cols]` weight.
    pub(super) fn raw_blocks(format: QFormat, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let nb = rows * cols / format.block_len();
        let mut data = Vec::with_capacity(nb * format.block_bytes());
        for _ in 0..nb {
            match format {
                QFormat::Q5_0 => {
                    let d = f16::from_f32(rng.gen_range(0.001..0.05));
                    data.extend(d.to_bits().to_le_bytes());
                    data.extend((0..20).map(|_| rng.gen::<u8>()));
                }
                // K-quant scales multiply 6- and 8-bit sub-block scales: d is much smaller.
                QFormat::Q4_K => {
                    let d = f16::from_f32(rng.gen_range(0.00005..0.0005));
                    let dmin = f16::from_f32(rng.gen_range(0.00005..0.0005));
                    data.extend(d.to_bits().to_le_bytes());
                    data.extend(dmin.to_bits().to_le_bytes());
                    data.extend((0..140).map(|_| rng.gen::<u8>()));
                }
                QFormat::Q6_K => {
                    let d = f16::from_f32(rng.gen_range(0.00001..0.0002));
                    data.extend((0..208).map(|_| rng.gen::<u8>()));
                    data.extend(d.to_bits().to_le_bytes());
                }
                QFormat::Q4_1 => {
                    let d = f16::from_f32(rng.gen_range(0.001..0.05));
                    let m = f16::from_f32(rng.gen_range(-0.4..0.0));
                    data.extend(d.to_bits().to_le_bytes());
                    data.extend(m.to_bits().to_le_bytes());
                    data.extend((0..16).map(|_| rng.gen::<u8>()));
                }
                QFormat::Q8_0 => {
                    let d = f16::from_f32(rng.gen_range(0.0001..0.01));
                    data.extend(d.to_bits().to_le_bytes());
                    data.extend((0..32).map(|_| rng.gen::<u8>()));
                }
                QFormat::F32 => {
                    data.extend((0..32).flat_map(|_| rng.gen_range(-1f32..1.0).to_le_bytes()))
                }
            }
        }
        data
    }

    fn reference(w: &[f32], x: &[f32], n: usize, rows: usize, cols: usize) -> Vec<f64> {
        let mut y = vec![0f64; n * rows];
        for j in 0..n {
            for o in 0..rows {
                y[j * rows + o] = (0..cols)
                    .map(|i| w[o * cols + i] as f64 * x[j * cols + i] as f64)
                    .sum();
            }
        }
        y
    }

    /// Max |got - want| relative to the largest |want| (so cancellation does not inflate it).
    fn rel_err(got: &[f32], want: &[f64]) -> f64 {
        let scale = want.iter().fold(0f64, |a, b| a.max(b.abs())).max(1e-30);
        got.iter()
            .zip(want)
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max)
            / scale
    }

    pub(super) fn isas() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    #[test]
    fn decode_matches_ggml_layout() {
        // d = 0.5, m = -1: element i is (low nibble of byte i) * 0.5 - 1, element i + 16 the high.
        let mut blk = Vec::new();
        blk.extend(f16::from_f32(0.5).to_bits().to_le_bytes());
        blk.extend(f16::from_f32(-1.0).to_bits().to_le_bytes());
        blk.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let w = QWeight::from_raw(QFormat::Q4_1, 1, 32, blk).unwrap();
        let v = w.dequantize();
        for i in 0..16 {
            assert_eq!(v[i], i as f32 * 0.5 - 1.0);
            assert_eq!(v[i + 16], (15 - i) as f32 * 0.5 - 1.0);
        }
        let mut blk = Vec::new();
        blk.extend(f16::from_f32(0.25).to_bits().to_le_bytes());
        blk.extend((0..32i8).map(|i| (i - 16) as u8));
        let w = QWeight::from_raw(QFormat::Q8_0, 1, 32, blk).unwrap();
        let v = w.dequantize();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, (i as f32 - 16.0) * 0.25);
        }
        // Q5_0, d = 0.5: element i has low nibble (i % 16) and fifth bit set for odd i.
        let mut blk = Vec::new();
        blk.extend(f16::from_f32(0.5).to_bits().to_le_bytes());
        blk.extend(0xAAAA_AAAAu32.to_le_bytes());
        blk.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let w = QWeight::from_raw(QFormat::Q5_0, 1, 32, blk).unwrap();
        let v = w.dequantize();
        for i in 0..16 {
            let h = if i % 2 == 1 { 16 } else { 0 };
            assert_eq!(v[i], ((i + h) as f32 - 16.0) * 0.5, "{i}");
            assert_eq!(v[i + 16], ((15 - i + h) as f32 - 16.0) * 0.5, "{i}");
        }
    }

    #[test]
    fn dequantize_matches_candle() {
        use candle_core::quantized::{GgmlDType, QTensor};
        use candle_core::{Device, Tensor};
        for (format, dt) in [
            (QFormat::Q4_1, GgmlDType::Q4_1),
            (QFormat::Q8_0, GgmlDType::Q8_0),
            (QFormat::Q5_0, GgmlDType::Q5_0),
            (QFormat::Q4_K, GgmlDType::Q4K),
            (QFormat::Q6_K, GgmlDType::Q6K),
        ] {
            let vals: Vec<f32> = (0..4 * 512)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0 * (1.0 + (i % 7) as f32))
                .collect();
            let t = Tensor::from_vec(vals, (4, 512), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&t, dt).unwrap();
            let ours = QWeight::from_raw(format, 4, 512, q.data().unwrap().into_owned()).unwrap();
            let theirs: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(ours.dequantize(), theirs, "{format:?}");
        }
    }

    /// Hands out at most 7 bytes per read, so block and chunk boundaries fall mid-read.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_stream_in_across_chunks_and_a_short_file_is_an_error() {
        // 300 rows of 2304 Q4_K weights: 388,800 bytes, several 64 KiB chunks.
        let (rows, cols) = (300, 2304);
        let whole = random(QFormat::Q4_K, rows, cols, 7).dequantize();
        let raw = raw_blocks(QFormat::Q4_K, rows, cols, 7);
        let streamed = QWeight::read_from(QFormat::Q4_K, rows, cols, &mut Trickle(&raw)).unwrap();
        assert_eq!(streamed.dequantize(), whole);
        // Row by row (each its own read) gives the same numbers.
        let row_bytes = raw.len() / rows;
        for r in [0, 149, 299] {
            let one = &raw[r * row_bytes..(r + 1) * row_bytes];
            let w = QWeight::read_from(QFormat::Q4_K, 1, cols, &mut &one[..]).unwrap();
            assert_eq!(w.dequantize(), whole[r * cols..(r + 1) * cols]);
        }
        let short = &raw[..raw.len() - 100];
        let err = QWeight::read_from(QFormat::Q4_K, rows, cols, &mut &short[..]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("could be read"), "{msg}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the io error is kept"
        );
    }

    #[test]
    fn kernels_match_dequantized_product() {
        let mut seed = 1;
        for format in ALL {
            let k = format.block_len() / BLOCK;
            let wide = if k == 1 { 576 } else { 2304 };
            for (rows, cols) in [(1, 32 * k), (37, 96 * k), (130, 224 * k), (64, wide)] {
                let w = random(format, rows, cols, seed);
                let wf = w.dequantize();
                for n in [1, 2, 3, 5, 8, 9, 16] {
                    seed += 1;
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                    let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-2f32..2.0)).collect();
                    let want = reference(&wf, &x, n, rows, cols);
                    for isa in isas() {
                        let mut y = vec![f32::NAN; n * rows];
                        w.matmul_t_with(isa, &x, n, &mut y).unwrap();
                        let e = rel_err(&y, &want);
                        assert!(e < 1e-5, "{format:?} {isa:?} [{rows},{cols}] n={n}: {e}");
                    }
                }
            }
        }
    }

    const ALL: [QFormat; 6] = [
        QFormat::Q4_1,
        QFormat::Q8_0,
        QFormat::Q5_0,
        QFormat::Q4_K,
        QFormat::Q6_K,
        QFormat::F32,
    ];

    #[test]
    fn simd_agrees_with_scalar() {
        for format in ALL {
            simd_agrees_with_scalar_for(format);
        }
        assert!(Isa::best().supported());
    }

    fn simd_agrees_with_scalar_for(format: QFormat) {
        let w = random(format, 300, 1536, 7);
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for n in [1, 4, 7, 16] {
            let x: Vec<f32> = (0..n * 1536).map(|_| rng.gen_range(-1f32..1.0)).collect();
            let mut ys = vec![0f32; n * 300];
            w.matmul_t_with(Isa::Scalar, &x, n, &mut ys).unwrap();
            for isa in isas() {
                let mut y = vec![0f32; n * 300];
                w.matmul_t_with(isa, &x, n, &mut y).unwrap();
                for (a, b) in y.iter().zip(&ys) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{format:?} {isa:?} n={n}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn reverse_permute_matches_f32_version() {
        for format in ALL {
            let cols = 2 * format.block_len();
            let w = random(format, 12, cols, 3);
            let t = candle_core::Tensor::from_vec(
                w.dequantize(),
                (12, cols),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            let want: Vec<f32> = crate::gguf::reverse_permute(&t, 3)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(
                w.reverse_permute(3).unwrap().dequantize(),
                want,
                "{format:?}"
            );
            assert!(w.reverse_permute(5).is_err());
        }
    }

    #[test]
    fn row_ranges_dequantize_like_the_whole() {
        for format in ALL {
            let cols = 2 * format.block_len();
            let w = random(format, 9, cols, 11);
            let all = w.dequantize();
            let mut part = vec![0f32; 4 * cols];
            w.dequantize_rows_into(3, 7, &mut part);
            assert_eq!(part, all[3 * cols..7 * cols], "{format:?}");
            for isa in isas() {
                let mut part = vec![f32::NAN; 9 * cols];
                w.dequantize_rows_with(isa, 0, 9, &mut part).unwrap();
                let same = part
                    .iter()
                    .zip(&all)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{format:?} {isa:?}");
            }
            assert!(w
                .dequantize_rows_with(Isa::Scalar, 3, 10, &mut part)
                .is_err());
            assert_eq!(w.size_in_bytes(), 9 * 2 * format.block_bytes());
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(QWeight::from_raw(QFormat::Q4_1, 2, 48, vec![0; 60]).is_err());
        assert!(QWeight::from_raw(QFormat::Q4_1, 2, 64, vec![0; 79]).is_err());
        assert!(QWeight::from_f32(2, 32, &[0.0; 63]).is_err());
        assert!(QWeight::from_raw(QFormat::Q4_K, 1, 128, vec![0; 72]).is_err());
        assert!(QWeight::from_raw(QFormat::Q6_K, 1, 256, vec![0; 210]).is_ok());
        let w = random(QFormat::Q8_0, 4, 32, 1);
        let mut y = vec![0f32; 8];
        assert!(w.matmul_t(&[0.0; 63], 2, &mut y).is_err());
        assert!(w.matmul_t(&[0.0; 64], 2, &mut y).is_ok());
    }
}
