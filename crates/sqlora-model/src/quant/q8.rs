//! Products with 8-bit-quantized activations: the activation rows are quantized once per
//! product and every weight block is dotted with them in integers, as llama.cpp's ggml-cpu does.
//!
//! * Activations ([`Q8Rows::quantize`], ggml's `quantize_row_q8_K` / `quantize_row_q8_0`): per
//!   block of [`QK_K`](super::QK_K) values for the K-quants (Q8_K) or [`BLOCK`](super::BLOCK) for the others (Q8_0), the
//!   scale `dx = amax / 127` and `a = round(x / dx)` (ties to even) in `−127..=127`, plus the sum
//!   of every 16 consecutive `a` (`bsums`, which carry the weights' offsets: a minimum or the
//!   −32 / −16 of Q6_K / Q5_0). `dx` stays f32 (ggml rounds Q8_0's to f16).
//! * Q4_K (`ggml_vec_dot_q4_K_q8_K`): `d·dx·Σ_j sc_j·Σ q·a − dmin·dx·Σ_j m_j·(Σa)_j`.
//! * Q6_K (`ggml_vec_dot_q6_K_q8_K`): `d·dx·(Σ_g sc_g·Σ q·a − 32·Σ_g sc_g·(Σa)_g)`, `q` unsigned.
//! * Q5_0 (`ggml_vec_dot_q5_0_q8_0`): `d·dx·(Σ q·a − 16·Σa)`, `q` unsigned 5-bit.
//! * Q8_0 (`ggml_vec_dot_q8_0_q8_0`): `d·dx·Σ w·a` (signed × signed: `|w|` times `a` with `w`'s
//!   sign, as ggml does).
//! * Q4_1 (`ggml_vec_dot_q4_1_q8_1`): `d·dx·Σ q·a + m·dx·Σa`.
//!
//! Each block's integer sums are exact and the same on every instruction set. The K-quants
//! combine them in the same f32 steps everywhere ([`k_step`], per super-block in order), so their
//! results are the same bit for bit in every kernel and for any rows beside them; for the
//! 32-weight formats only the f32 accumulation of the blocks' terms differs in order between
//! instruction sets. The error against the f32 product is the
//! activations' rounding: at most `dx/2` per value, so about `1e-2` of `|w|·|x|` relative to the
//! dot at worst and much less on average (the tests bound it).
//!
//! The SIMD kernels decode one weight block into registers (AVX2: `_mm256_maddubs_epi16` and
//! `_mm256_madd_epi16` with the sub-block scales, like ggml; AVX-512BW the same on 64 bytes; the
//! 32-weight formats use VNNI's `_mm512_dpbusd_epi32` where the CPU has it) and multiply it
//! with up to [`group_max`] activation rows. Products of several rows of K-quants on AVX-512
//! VNNI (decode batches from 2 rows for Q4_K and 8 for Q6_K, and prompts) take the tiles of
//! `q8_tiles.rs` instead ([`tiles_apply`]): weights unpacked once per 16 rows, `vpdpbusd` with
//! broadcast activations, the sub-block scales applied once per sub-block. Every Q8_0 and Q5_0
//! product on AVX-512 VNNI takes them too (an exact integer sum per block with the weights'
//! zero point folded in, one f32 rounding per block).

use half::f16;

use super::{Args, Isa, QFormat};

/// Activation rows quantized for the integer kernels of one weight format.
pub(crate) struct Q8Rows {
    /// Values per scale: [`super::QK_K`] or [`super::BLOCK`].
    block: usize,
    cols: usize,
    /// `n · cols` quantized values.
    qs: Vec<i8>,
    /// `n · cols / block` scales.
    d: Vec<f32>,
    /// `n · cols / 16` sums of 16 consecutive quantized values.
    bsums: Vec<i16>,
    /// For 32-value blocks: `dx · Σa` per block (`n · cols / 32`), ggml's `s` of Q8_1.
    sx: Vec<f32>,
    /// For 32-value blocks: per pair of blocks `dx_b` 8 times then `dx_b+1` 8 times (a missing
    /// last block is 0), `n · pairs(cols) · 16` values, the lane layout of the AVX-512 kernels.
    dxe: Vec<f32>,
}

/// Pairs of 32-value blocks in a row of `cols`.
fn pairs(cols: usize) -> usize {
    cols.div_ceil(64)
}

impl Q8Rows {
    /// Quantizes `n` rows of `cols` values `x` for weights in `format` (`cols` a multiple of its
    /// block length, checked by the caller).
    pub(crate) fn quantize(format: QFormat, x: &[f32], n: usize, cols: usize) -> Q8Rows {
        let block = format.block_len();
        let mut q = Q8Rows {
            block,
            cols,
            qs: vec![0; n * cols],
            d: vec![0.0; n * cols / block],
            bsums: vec![0; n * cols / 16],
            sx: Vec::new(),
            dxe: Vec::new(),
        };
        #[cfg(target_arch = "x86_64")]
        let done = if Isa::best() == Isa::Avx512 {
            // SAFETY: the CPU has AVX-512F/BW (the same code, vectorized wider).
            unsafe { quantize512(x, &mut q) };
            true
        } else {
            false
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        if !done {
            quantize_into(x, &mut q);
        }
        if block == 32 {
            q.block32_extras();
        }
        q
    }

    /// Fills `sx` and `dxe` from `d` and `bsums` (32-value blocks).
    fn block32_extras(&mut self) {
        let nb = self.d.len();
        self.sx = (0..nb)
            .map(|b| self.d[b] * (self.bsums[2 * b] as i32 + self.bsums[2 * b + 1] as i32) as f32)
            .collect();
        let (per_row, np) = (self.cols / 32, pairs(self.cols));
        let rows = nb / per_row.max(1);
        self.dxe = vec![0.0; rows * np * 16];
        for r in 0..rows {
            for b in 0..per_row {
                let at = (r * np + b / 2) * 16 + 8 * (b % 2);
                self.dxe[at..at + 8].fill(self.d[r * per_row + b]);
            }
        }
    }
}

/// AVX-512 build of [`quantize_into`] (same arithmetic, so the same values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn quantize512(x: &[f32], q: &mut Q8Rows) {
    quantize_into(x, q)
}

#[inline(always)]
fn quantize_into(x: &[f32], q: &mut Q8Rows) {
    for ((xb, qb), d) in x
        .chunks_exact(q.block)
        .zip(q.qs.chunks_exact_mut(q.block))
        .zip(q.d.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            qb.fill(0);
            *d = 0.0;
            continue;
        }
        let id = 127.0 / amax;
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = (v * id).round_ties_even() as i8;
        }
        *d = amax / 127.0;
    }
    for (s, qb) in q.bsums.iter_mut().zip(q.qs.chunks_exact(16)) {
        *s = qb.iter().map(|v| *v as i16).sum();
    }
}

/// Q4_K's eight 6-bit sub-block scales and eight mins from its 12 packed bytes (ggml's
/// `get_scale_min_k4`, done on words like `ggml_vec_dot_q4_K_q8_K`): `[sc_0..8, m_0..8]`.
#[inline(always)]
pub(crate) fn q4k_scale_min(p: &[u8]) -> [u8; 16] {
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;
    let w = |i: usize| u32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]]);
    let (u0, u1, u2) = (w(0), w(1), w(2));
    let u3 = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    let m_lo = u1 & KMASK1;
    let s_hi = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let s_lo = u0 & KMASK1;
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&s_lo.to_le_bytes());
    out[4..8].copy_from_slice(&s_hi.to_le_bytes());
    out[8..12].copy_from_slice(&m_lo.to_le_bytes());
    out[12..16].copy_from_slice(&u3.to_le_bytes());
    out
}

/// Activation rows handled together by one kernel call.
pub(crate) fn group_max(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2 => 4,
        Isa::Scalar => super::MAX_ROWS,
    }
}

/// One kernel call's operands: the weight rows and outputs (`w.x` unused) and the quantized
/// activation rows `j < n` at `qx + j · cols`, `dx + j · cols / block`, `bs + j · cols / 16`.
pub(crate) struct QArgs {
    pub(crate) w: Args,
    pub(crate) qx: *const i8,
    pub(crate) dx: *const f32,
    pub(crate) bs: *const i16,
    /// Scales per activation row (`cols / block`).
    pub(crate) xblocks: usize,
    /// `Q8Rows::sx` of row `j` at `sx + j · xblocks` (32-value blocks).
    pub(crate) sx: *const f32,
    /// `Q8Rows::dxe` of row `j` at `dxe + j · 16 · pairs(cols)` (32-value blocks).
    pub(crate) dxe: *const f32,
}

impl QArgs {
    /// The same product for activation rows `j..` only.
    ///
    /// # Safety
    /// `j` must be below the rows `self` describes.
    #[cfg(target_arch = "x86_64")]
    unsafe fn rows_from(&self, j: usize) -> QArgs {
        let w = &self.w;
        let cols = w.cols;
        let at = |p: *const f32, per: usize| if p.is_null() { p } else { p.add(j * per) };
        QArgs {
            w: Args {
                y: w.y.add(j * w.y_stride),
                ..*w
            },
            qx: self.qx.add(j * cols),
            dx: self.dx.add(j * self.xblocks),
            bs: self.bs.add(j * cols / 16),
            xblocks: self.xblocks,
            sx: at(self.sx, self.xblocks),
            dxe: at(self.dxe, 16 * pairs(cols)),
        }
    }
}

impl Q8Rows {
    /// Operands for rows `first..` of these activations.
    pub(crate) fn args(&self, first: usize, w: Args) -> QArgs {
        QArgs {
            w,
            qx: self.qs[first * self.cols..].as_ptr(),
            dx: self.d[first * self.cols / self.block..].as_ptr(),
            bs: self.bsums[first * self.cols / 16..].as_ptr(),
            xblocks: self.cols / self.block,
            sx: if self.sx.is_empty() {
                std::ptr::null()
            } else {
                self.sx[first * self.cols / self.block..].as_ptr()
            },
            dxe: if self.dxe.is_empty() {
                std::ptr::null()
            } else {
                self.dxe[first * 16 * pairs(self.cols)..].as_ptr()
            },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "q8_tiles.rs"]
mod tiles;

/// Fewest activation rows for which [`tiles_apply`] takes the tile kernels, per format: below,
/// unpacking the weights costs more than it saves. Measured with `kquant_bench` ([8960, 1536],
/// one thread, Zen 4): Q4_K tiles take 0.76× the one-row kernels' time at 2 rows, 0.63× at 8
/// and 0.45× at 64; Q6_K's unpacking is dearer (2× at 1 row, 0.86× at 8, 0.49× at 64).
pub(crate) const TILES_MIN_ROWS_Q4K: usize = 2;
/// See [`TILES_MIN_ROWS_Q4K`].
pub(crate) const TILES_MIN_ROWS_Q6K: usize = 8;

/// The fewest rows for the tiles of `fmt`: the K-quants' measured thresholds; every product of
/// Q8_0 and Q5_0, whose tiles sum the blocks in another f32 order than their one-row kernels,
/// so that a row's result never depends on how many rows share it; never for the others.
/// `SQLORA_TILES_MIN_ROWS`, for benchmarks that compare the kernels (`kquant_bench`, the
/// `speed` example), sets the K-quants' threshold (their results are the same bit for bit
/// either way) and sends every Q8_0 and Q5_0 product to the one-row kernels.
fn tiles_min_rows(fmt: QFormat) -> usize {
    static MIN: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let set = || {
        *MIN.get_or_init(|| {
            std::env::var("SQLORA_TILES_MIN_ROWS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
    };
    match fmt {
        QFormat::Q4_K => set().unwrap_or(TILES_MIN_ROWS_Q4K),
        QFormat::Q6_K => set().unwrap_or(TILES_MIN_ROWS_Q6K),
        QFormat::Q8_0 | QFormat::Q5_0 => set().map_or(1, |_| usize::MAX),
        QFormat::Q4_1 | QFormat::F32 => usize::MAX,
    }
}

/// Whether the tile kernels ([`dispatch_tiles`]) take `n` rows of `fmt` with `isa` (AVX-512
/// VNNI): the K-quants from [`TILES_MIN_ROWS_Q4K`] / [`TILES_MIN_ROWS_Q6K`] rows, with results
/// bit for bit those of [`dispatch`]; Q8_0 and Q5_0 always (their own f32 order, one rounding
/// per block).
pub(crate) fn tiles_apply(isa: Isa, fmt: QFormat, n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa == Isa::Avx512 && n >= tiles_min_rows(fmt) && simd::vnni()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, fmt, n);
        false
    }
}

/// All `n` activation rows of `a` times its weight rows with the tile kernels (16 weight rows
/// × 8 activation rows).
///
/// # Safety
/// `a` must describe valid buffers for `n` rows and rows that are a multiple of 16 or end the
/// weight; [`tiles_apply`] must hold.
pub(crate) unsafe fn dispatch_tiles(fmt: QFormat, n: usize, a: &QArgs) {
    #[cfg(target_arch = "x86_64")]
    tiles::tiles512(fmt, n, a);
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no tile kernels for {fmt:?} {n} {:p}", a.qx);
}

/// Runs the kernel of `isa` for `n ≤ group_max(isa)` activation rows.
///
/// # Safety
/// `a` must describe valid buffers; `isa` must be supported.
pub(crate) unsafe fn dispatch(isa: Isa, fmt: QFormat, n: usize, a: &QArgs) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => simd::dispatch512(fmt, n, a),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => simd::dispatch256(fmt, n, a),
        _ => scalar_rows(fmt, n, a),
    }
}

/// The portable kernel, the reference for the SIMD ones.
///
/// # Safety
/// `a` must describe valid buffers.
pub(crate) unsafe fn scalar_rows(fmt: QFormat, n: usize, a: &QArgs) {
    let w = &a.w;
    let (qb, ns, bl) = (fmt.qs_bytes(), fmt.scales(), fmt.block_len());
    let cols = w.cols;
    for o in 0..w.nrows {
        let row = std::slice::from_raw_parts(w.w.add(o * w.row_bytes), w.row_bytes);
        let sc = std::slice::from_raw_parts(w.s.add(o * w.row_scales), w.row_scales);
        for j in 0..n {
            let qx = std::slice::from_raw_parts(a.qx.add(j * cols), cols);
            let dx = std::slice::from_raw_parts(a.dx.add(j * a.xblocks), a.xblocks);
            let bs = std::slice::from_raw_parts(a.bs.add(j * cols / 16), cols / 16);
            let mut acc = 0f32;
            for b in 0..w.nblocks {
                let blk = &row[b * qb..(b + 1) * qb];
                let mut s = [0f32; 2];
                for (d, v) in s.iter_mut().zip(&sc[b * ns..(b + 1) * ns]) {
                    *d = f16::from_bits(*v).to_f32();
                }
                let x = &qx[b * bl..(b + 1) * bl];
                let bsb = &bs[b * bl / 16..(b + 1) * bl / 16];
                acc = match fmt {
                    QFormat::Q4_K | QFormat::Q6_K => {
                        let (isum, msum) = k_sums(fmt, blk, x, bsb);
                        k_step(acc, isum, msum, s[0], s[1], dx[b])
                    }
                    _ => acc + block_dot(fmt, blk, &s, x, dx[b], bsb),
                };
            }
            *w.y.add(j * w.y_stride + o) = acc;
        }
    }
}

/// The f32 step of a K-quant super-block, the same in every kernel (scalar, AVX2, AVX-512, the
/// tiles), so a row's result does not depend on the kernel nor on the rows beside it: with the
/// super-block's exact integer sums `isum = Σ_j sc_j·Σ q·a` (Q6_K: `Σ_g sc_g·(Σ q·a − 32·Σa)`)
/// and `msum = Σ_j m_j·Σa` (Q6_K: 0), `t = isum·d − msum·dmin` (one product rounded, then a
/// fused multiply-add) and `acc + t·dx` (fused).
#[inline(always)]
pub(crate) fn k_step(acc: f32, isum: i32, msum: i32, d: f32, dmin: f32, dx: f32) -> f32 {
    let t = (-(msum as f32)).mul_add(dmin, isum as f32 * d);
    t.mul_add(dx, acc)
}

/// A K-quant super-block's exact integer sums for [`k_step`] (scalar reference): weight block
/// `blk` (quants as kept), activations `x` with 16-sums `bs`.
fn k_sums(fmt: QFormat, blk: &[u8], x: &[i8], bs: &[i16]) -> (i32, i32) {
    let a = |i: usize| x[i] as i32;
    let bsum = |g: usize| bs[g] as i32;
    match fmt {
        QFormat::Q4_K => {
            let sm = q4k_scale_min(&blk[..12]);
            let nib = &blk[12..];
            let (mut sumi, mut summ) = (0i32, 0i32);
            for sub in 0..8 {
                let q = &nib[32 * (sub / 2)..32 * (sub / 2) + 32];
                let shift = 4 * (sub % 2);
                let t: i32 = (0..32)
                    .map(|l| ((q[l] >> shift) & 0x0F) as i32 * a(32 * sub + l))
                    .sum();
                sumi += sm[sub] as i32 * t;
                summ += sm[8 + sub] as i32 * (bsum(2 * sub) + bsum(2 * sub + 1));
            }
            (sumi, summ)
        }
        QFormat::Q6_K => {
            let (ql, qh, sc) = (&blk[..128], &blk[128..192], &blk[192..208]);
            let mut sums = [0i32; 16];
            for half in 0..2 {
                for k in 0..4 {
                    for l in 0..32 {
                        let lo = (ql[64 * half + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
                        let hi = (qh[32 * half + l] >> (2 * k)) & 3;
                        let e = 128 * half + 32 * k + l;
                        sums[e / 16] += (lo | (hi << 4)) as i32 * a(e);
                    }
                }
            }
            let sumi: i32 = (0..16)
                .map(|g| (sc[g] as i8) as i32 * (sums[g] - 32 * bsum(g)))
                .sum();
            (sumi, 0)
        }
        _ => unreachable!("{fmt:?} is not a K-quant"),
    }
}

/// One block's term of the product (scalar reference) for the 32-weight formats: weight block
/// `blk` (quants as kept) with f32 scales `s`, activations `x` with scale `dx` and 16-sums `bs`.
fn block_dot(fmt: QFormat, blk: &[u8], s: &[f32], x: &[i8], dx: f32, bs: &[i16]) -> f32 {
    let a = |i: usize| x[i] as i32;
    let bsum = |g: usize| bs[g] as i32;
    match fmt {
        QFormat::Q5_0 => {
            let qh = u32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
            let nib = &blk[4..];
            let mut t = 0i32;
            for (i, q) in nib.iter().enumerate() {
                let lo = (q & 0x0F) as u32 | (((qh >> i) & 1) << 4);
                let hi = (q >> 4) as u32 | (((qh >> (i + 16)) & 1) << 4);
                t += lo as i32 * a(i) + hi as i32 * a(i + 16);
            }
            (s[0] * dx) * (t - 16 * (bsum(0) + bsum(1))) as f32
        }
        QFormat::Q8_0 => {
            let t: i32 = (0..32).map(|i| (blk[i] as i8) as i32 * a(i)).sum();
            (s[0] * dx) * t as f32
        }
        QFormat::Q4_1 => {
            let mut t = 0i32;
            for (i, q) in blk.iter().enumerate() {
                t += (q & 0x0F) as i32 * a(i) + (q >> 4) as i32 * a(i + 16);
            }
            (s[0] * dx) * t as f32 + (s[1] * dx) * (bsum(0) + bsum(1)) as f32
        }
        QFormat::Q4_K | QFormat::Q6_K => unreachable!("K-quants take k_sums"),
        QFormat::F32 => unreachable!("f32 weights take the f32 path"),
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX2 and AVX-512 integer kernels: one weight block is decoded into registers as unsigned
    //! bytes, then multiplied with `N` activation rows.

    use std::arch::x86_64::*;

    use super::super::simd::{f16_row, prefetch_row, prefetch_start};
    use super::{scalar_rows, QArgs, QFormat};

    macro_rules! by_rows {
        ($f:ident, $a:expr, $n:expr, [$($k:literal),*]) => {
            match $n {
                $($k => $f::<$k>($a),)*
                _ => unreachable!("group of {} rows", $n),
            }
        };
    }

    /// Whether the CPU has AVX-512 VNNI (`vpdpbusd`).
    pub(super) fn vnni() -> bool {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *VNNI.get_or_init(|| std::arch::is_x86_feature_detected!("avx512vnni"))
    }

    /// # Safety
    /// AVX-512F/BW must be available; `a` valid; `n <= 8`.
    pub(super) unsafe fn dispatch512(fmt: QFormat, n: usize, a: &QArgs) {
        match fmt {
            QFormat::Q4_K => by_rows!(q4k_512, a, n, [1, 2, 3, 4, 5, 6, 7, 8]),
            QFormat::Q6_K => by_rows!(q6k_512, a, n, [1, 2, 3, 4, 5, 6, 7, 8]),
            QFormat::Q5_0 | QFormat::Q8_0 | QFormat::Q4_1 if vnni() => match fmt {
                QFormat::Q5_0 => by_rows!(q5_0_512, a, n, [1, 2, 3, 4, 5, 6, 7, 8]),
                QFormat::Q8_0 => by_rows!(q8_0_512, a, n, [1, 2, 3, 4, 5, 6, 7, 8]),
                _ => by_rows!(q4_1_512, a, n, [1, 2, 3, 4, 5, 6, 7, 8]),
            },
            _ => {
                // Without VNNI the AVX2 kernels, four rows at a time.
                let mut j = 0;
                while j < n {
                    let m = (n - j).min(4);
                    dispatch256(fmt, m, &a.rows_from(j));
                    j += m;
                }
            }
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available; `a` valid; `n <= 4`.
    pub(super) unsafe fn dispatch256(fmt: QFormat, n: usize, a: &QArgs) {
        match fmt {
            QFormat::Q4_K => by_rows!(q4k_256, a, n, [1, 2, 3, 4]),
            QFormat::Q6_K => by_rows!(q6k_256, a, n, [1, 2, 3, 4]),
            QFormat::Q5_0 => by_rows!(q5_0_256, a, n, [1, 2, 3, 4]),
            QFormat::Q8_0 => by_rows!(q8_0_256, a, n, [1, 2, 3, 4]),
            QFormat::Q4_1 => by_rows!(q4_1_256, a, n, [1, 2, 3, 4]),
            QFormat::F32 => scalar_rows(fmt, n, a),
        }
    }

    /// Q5_0's 32 weights at `p` as signed bytes `q − 16` (ggml's `bytes_from_bits_32`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q5_0_w256(p: *const u8) -> __m256i {
        let qh = (p as *const u32).read_unaligned();
        let nib = _mm_loadu_si128(p.add(4) as *const __m128i);
        let m4 = _mm_set1_epi8(0x0F);
        let q = _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16(nib, 4), m4),
            _mm_and_si128(nib, m4),
        );
        // Byte i of the mask is all ones when bit i of `qh` is set.
        let shuf = _mm256_setr_epi64x(
            0,
            0x0101010101010101,
            0x0202020202020202,
            0x0303030303030303,
        );
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
        let bits = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
        let bit = _mm256_cmpeq_epi8(bits, _mm256_set1_epi64x(-1));
        let q = _mm256_or_si256(q, _mm256_and_si256(bit, _mm256_set1_epi8(0x10)));
        _mm256_sub_epi8(q, _mm256_set1_epi8(16))
    }

    /// Q8_0's 32 signed weights at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q8_0_w256(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }

    /// Q4_1's 32 unsigned weights at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_1_w256(p: *const u8) -> __m256i {
        let nib = _mm_loadu_si128(p as *const __m128i);
        let m4 = _mm_set1_epi8(0x0F);
        _mm256_set_m128i(
            _mm_and_si128(_mm_srli_epi16(nib, 4), m4),
            _mm_and_si128(nib, m4),
        )
    }

    /// AVX2 kernels of the 32-weight formats (ggml's AVX2 `mul_sum_i8_pairs_float` for the
    /// signed ones): one block's weights, `N` rows of `maddubs` + `madd`, an f32 FMA with
    /// `d·dx`; Q4_1 adds `m·dx·Σa` per block.
    macro_rules! kernel32_256 {
        ($name:ident, $fmt:expr, $decode:ident, $signed:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn $name<const N: usize>(a: &QArgs) {
                let w = &a.w;
                let (qb, ns) = ($fmt.qs_bytes(), $fmt.scales());
                let ones = _mm256_set1_epi16(1);
                let mut sc = vec![0f32; w.row_scales];
                let ahead = prefetch_start(w);
                for o in 0..w.nrows {
                    prefetch_row(w, o + ahead);
                    let row = w.w.add(o * w.row_bytes);
                    f16_row(w.s.add(o * w.row_scales), &mut sc);
                    let mut acc = [_mm256_setzero_ps(); N];
                    let mut accm = [0f32; N];
                    for b in 0..w.nblocks {
                        let q = $decode(row.add(b * qb));
                        let d = sc[b * ns];
                        let aq = if $signed { _mm256_sign_epi8(q, q) } else { q };
                        for j in 0..N {
                            let x =
                                _mm256_loadu_si256(a.qx.add(j * w.cols + 32 * b) as *const __m256i);
                            let x = if $signed { _mm256_sign_epi8(x, q) } else { x };
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, x), ones);
                            let dx = *a.dx.add(j * a.xblocks + b);
                            acc[j] = _mm256_fmadd_ps(
                                _mm256_set1_ps(d * dx),
                                _mm256_cvtepi32_ps(p),
                                acc[j],
                            );
                            if ns == 2 {
                                accm[j] += sc[2 * b + 1] * *a.sx.add(j * a.xblocks + b);
                            }
                        }
                    }
                    for j in 0..N {
                        *w.y.add(j * w.y_stride + o) = hsum256(acc[j]) + accm[j];
                    }
                }
            }
        };
    }

    kernel32_256!(q5_0_256, QFormat::Q5_0, q5_0_w256, true);
    kernel32_256!(q8_0_256, QFormat::Q8_0, q8_0_w256, true);
    kernel32_256!(q4_1_256, QFormat::Q4_1, q4_1_w256, false);

    /// `[lo, hi]` nibbles of two blocks' 16 bytes each (`n` = both) as 64 bytes ordered
    /// `lo_0, hi_0, lo_1, hi_1`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn nibbles_pair(n: __m256i) -> __m512i {
        let m4 = _mm256_set1_epi8(0x0F);
        let lo = _mm256_and_si256(n, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16(n, 4), m4);
        let v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        _mm512_shuffle_i64x2(v, v, 0xD8)
    }

    /// Two Q5_0 blocks at `p` as unsigned 5-bit weights (the −16 is applied through `Σa`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q5_0_pair(p: *const u8, two: bool) -> __m512i {
        let n0 = _mm_loadu_si128(p.add(4) as *const __m128i);
        let qh0 = (p as *const u32).read_unaligned() as u64;
        let (n1, qh1) = if two {
            (
                _mm_loadu_si128(p.add(24) as *const __m128i),
                (p.add(20) as *const u32).read_unaligned() as u64,
            )
        } else {
            (_mm_setzero_si128(), 0)
        };
        let q = nibbles_pair(_mm256_set_m128i(n1, n0));
        let q = if two {
            q
        } else {
            _mm512_maskz_mov_epi8(0xFFFF_FFFF, q)
        };
        _mm512_or_si512(
            q,
            _mm512_maskz_mov_epi8(qh0 | (qh1 << 32), _mm512_set1_epi8(0x10)),
        )
    }

    /// Two Q8_0 blocks at `p` as unsigned `w + 128` (the −128 is applied through `Σa`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q8_0_pair(p: *const u8, two: bool) -> __m512i {
        let mask = if two { u64::MAX } else { 0xFFFF_FFFF };
        let q = _mm512_maskz_loadu_epi8(mask, p as *const i8);
        _mm512_maskz_mov_epi8(mask, _mm512_xor_si512(q, _mm512_set1_epi8(-128)))
    }

    /// Two Q4_1 blocks at `p` as unsigned 4-bit weights.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    unsafe fn q4_1_pair(p: *const u8, two: bool) -> __m512i {
        let n0 = _mm_loadu_si128(p as *const __m128i);
        let n1 = if two {
            _mm_loadu_si128(p.add(16) as *const __m128i)
        } else {
            _mm_setzero_si128()
        };
        let q = nibbles_pair(_mm256_set_m128i(n1, n0));
        if two {
            q
        } else {
            _mm512_maskz_mov_epi8(0xFFFF_FFFF, q)
        }
    }

    /// AVX-512 VNNI kernels of the 32-weight formats: two blocks per register of unsigned
    /// weights, one `vpdpbusd` per activation row, the f32 factor `d·dx` per lane (`dxe`); the
    /// offset of the weights (`−16`, `−128`, Q4_1's `m`) enters once per row as
    /// `Σ_b off_b·dx_b·Σa_b` (`sx`).
    macro_rules! kernel32_512 {
        ($name:ident, $fmt:expr, $decode:ident, $offset:expr) => {
            #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
            unsafe fn $name<const N: usize>(a: &QArgs) {
                let w = &a.w;
                let (qb, ns, nb) = ($fmt.qs_bytes(), $fmt.scales(), w.nblocks);
                let np = super::pairs(w.cols);
                let mut sc = vec![0f32; w.row_scales];
                // `d` and the offset factor per block, padded to whole vectors.
                let mut dw = vec![0f32; 16 * nb.div_ceil(16) + 2];
                let mut off = vec![0f32; 16 * nb.div_ceil(16)];
                let idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
                let ahead = prefetch_start(w);
                for o in 0..w.nrows {
                    prefetch_row(w, o + ahead);
                    let row = w.w.add(o * w.row_bytes);
                    f16_row(w.s.add(o * w.row_scales), &mut sc);
                    for b in 0..nb {
                        dw[b] = sc[b * ns];
                        off[b] = if ns == 2 {
                            sc[2 * b + 1]
                        } else {
                            $offset * sc[b]
                        };
                    }
                    let mut acc = [_mm512_setzero_ps(); N];
                    for pi in 0..np {
                        let two = 2 * pi + 1 < nb;
                        let q = $decode(row.add(2 * pi * qb), two);
                        let d2 = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(
                            dw.as_ptr().add(2 * pi) as *const __m128i,
                        )));
                        let dwv = _mm512_permutexvar_ps(idx, d2);
                        let xmask = if two { u64::MAX } else { 0xFFFF_FFFF };
                        for j in 0..N {
                            let x = _mm512_maskz_loadu_epi8(xmask, a.qx.add(j * w.cols + 64 * pi));
                            let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, x);
                            let dx = _mm512_loadu_ps(a.dxe.add((j * np + pi) * 16));
                            acc[j] = _mm512_fmadd_ps(
                                _mm512_cvtepi32_ps(s),
                                _mm512_mul_ps(dwv, dx),
                                acc[j],
                            );
                        }
                    }
                    for j in 0..N {
                        let sx = a.sx.add(j * a.xblocks);
                        let mut b = 0;
                        while b < nb {
                            let m = if nb - b >= 16 {
                                0xFFFF
                            } else {
                                (1u16 << (nb - b)) - 1
                            };
                            let s = _mm512_maskz_loadu_ps(m, sx.add(b));
                            let f = _mm512_loadu_ps(off.as_ptr().add(b));
                            acc[j] = _mm512_fmadd_ps(s, f, acc[j]);
                            b += 16;
                        }
                        *w.y.add(j * w.y_stride + o) = _mm512_reduce_add_ps(acc[j]);
                    }
                }
            }
        };
    }

    kernel32_512!(q5_0_512, QFormat::Q5_0, q5_0_pair, -16.0);
    kernel32_512!(q8_0_512, QFormat::Q8_0, q8_0_pair, -128.0);
    kernel32_512!(q4_1_512, QFormat::Q4_1, q4_1_pair, 0.0);

    /// f32 of the f16 at `p`.
    #[inline]
    #[target_feature(enable = "f16c")]
    unsafe fn f16_at(p: *const u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(*p as i32)))
    }

    /// Sum of the 4 lanes (exact, integers).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_epi32_128(v: __m128i) -> i32 {
        let s = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01));
        _mm_cvtsi128_si32(s)
    }

    /// Sum of the 8 lanes (exact, integers).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum_epi32_256(v: __m256i) -> i32 {
        hsum_epi32_128(_mm_add_epi32(
            _mm256_castsi256_si128(v),
            _mm256_extracti128_si256(v, 1),
        ))
    }

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4k_256<const N: usize>(a: &QArgs) {
        let w = &a.w;
        let m4 = _mm256_set1_epi8(0x0F);
        let ahead = prefetch_start(w);
        for o in 0..w.nrows {
            prefetch_row(w, o + ahead);
            let row = w.w.add(o * w.row_bytes);
            let srow = w.s.add(o * w.row_scales);
            let mut acc = [0f32; N];
            for b in 0..w.nblocks {
                let p = row.add(b * 140);
                let d = f16_at(srow.add(2 * b));
                let dmin = f16_at(srow.add(2 * b + 1));
                let sm = q4k_scale_min_sse(p);
                let mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
                let sc = _mm_cvtepu8_epi16(sm);
                let sc = _mm256_set_m128i(sc, sc);
                // Sub-block `s`'s scale in every 16-bit lane (ggml's `get_scale_shuffle_k4`).
                let scale = |s: i16| {
                    _mm256_shuffle_epi8(sc, _mm256_set1_epi16(((2 * s + 1) << 8) | (2 * s)))
                };
                let mut sumi = [_mm256_setzero_si256(); N];
                for pi in 0..4 {
                    let q = _mm256_loadu_si256(p.add(12 + 32 * pi) as *const __m256i);
                    let ql = _mm256_and_si256(q, m4);
                    let qh = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                    let sl = scale(2 * pi as i16);
                    let sh = scale(2 * pi as i16 + 1);
                    for (j, s) in sumi.iter_mut().enumerate() {
                        let x = a.qx.add(j * w.cols + 256 * b + 64 * pi);
                        let xl = _mm256_loadu_si256(x as *const __m256i);
                        let xh = _mm256_loadu_si256(x.add(32) as *const __m256i);
                        let pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, xl));
                        let ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, xh));
                        *s = _mm256_add_epi32(*s, _mm256_add_epi32(pl, ph));
                    }
                }
                for j in 0..N {
                    let dx = *a.dx.add(j * a.xblocks + b);
                    let bs = _mm256_loadu_si256(a.bs.add(j * w.cols / 16 + 16 * b) as *const _);
                    let bs32 =
                        _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                    let summ = hsum_epi32_128(_mm_madd_epi16(mins, bs32));
                    acc[j] = super::k_step(acc[j], hsum_epi32_256(sumi[j]), summ, d, dmin, dx);
                }
            }
            for (j, v) in acc.iter().enumerate() {
                *w.y.add(j * w.y_stride + o) = *v;
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q6k_256<const N: usize>(a: &QArgs) {
        let w = &a.w;
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x30);
        let ahead = prefetch_start(w);
        for o in 0..w.nrows {
            prefetch_row(w, o + ahead);
            let row = w.w.add(o * w.row_bytes);
            let srow = w.s.add(o * w.row_scales);
            let mut acc = [0f32; N];
            for b in 0..w.nblocks {
                let p = row.add(b * 208);
                let d = f16_at(srow.add(b));
                let sc8 = _mm_loadu_si128(p.add(192) as *const __m128i);
                let sc16 = _mm256_cvtepi8_epi16(sc8);
                let scb = std::slice::from_raw_parts(p.add(192) as *const i8, 16);
                let mut sumi = [_mm256_setzero_si256(); N];
                for half in 0..2 {
                    let ql0 = _mm256_loadu_si256(p.add(64 * half) as *const __m256i);
                    let ql1 = _mm256_loadu_si256(p.add(64 * half + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * half) as *const __m256i);
                    // Weights 32k..32k + 32 of this half: 4 bits of `ql`, 2 of `qh` (as bits 4, 5).
                    let w4 = [
                        _mm256_or_si256(
                            _mm256_and_si256(ql0, m4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, m4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                            _mm256_and_si256(qh, m2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                        ),
                    ];
                    for (k, wk) in w4.iter().enumerate() {
                        let g = 8 * half + 2 * k;
                        let s = _mm256_set_m128i(
                            _mm_set1_epi16(scb[g + 1] as i16),
                            _mm_set1_epi16(scb[g] as i16),
                        );
                        for (j, acc_i) in sumi.iter_mut().enumerate() {
                            let x = a.qx.add(j * w.cols + 256 * b + 128 * half + 32 * k);
                            let xv = _mm256_loadu_si256(x as *const __m256i);
                            let pr = _mm256_madd_epi16(s, _mm256_maddubs_epi16(*wk, xv));
                            *acc_i = _mm256_add_epi32(*acc_i, pr);
                        }
                    }
                }
                for j in 0..N {
                    let dx = *a.dx.add(j * a.xblocks + b);
                    let bs = _mm256_loadu_si256(a.bs.add(j * w.cols / 16 + 16 * b) as *const _);
                    let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    let t = hsum_epi32_256(_mm256_sub_epi32(sumi[j], corr));
                    acc[j] = super::k_step(acc[j], t, 0, d, 0.0, dx);
                }
            }
            for (j, v) in acc.iter().enumerate() {
                *w.y.add(j * w.y_stride + o) = *v;
            }
        }
    }

    /// [`super::q4k_scale_min`] on vectors: the 12 packed bytes at `p` (16 readable) to
    /// `[sc_0..8, m_0..8]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q4k_scale_min_sse(p: *const u8) -> __m128i {
        let q = _mm_loadu_si128(p as *const __m128i);
        let t1 = _mm_shuffle_epi8(
            q,
            _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11),
        );
        let t2 = _mm_shuffle_epi8(
            q,
            _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7),
        );
        let m = |a: i8, b: i8, c: i8, d: i8| {
            _mm_setr_epi8(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d)
        };
        // sc_0..4 and m_0..4: the low 6 bits; sc_4..8: the low nibble of bytes 8..12, m_4..8
        // their high nibble; both with bits 6, 7 of bytes 0..4 / 4..8 as bits 4, 5.
        let low = _mm_and_si128(t1, m(0x3F, 0x0F, 0x3F, 0));
        let high = _mm_and_si128(_mm_srli_epi16(t1, 4), m(0, 0, 0, 0x0F));
        let top = _mm_and_si128(_mm_srli_epi16(t2, 2), m(0, 0x30, 0, 0x30));
        _mm_or_si128(_mm_or_si128(low, high), top)
    }

    /// Lane `i` = the sum of the 8 lanes of `v[i]` (exact, integers): one `vphaddd` tree.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn reduce8(v: [__m256i; 8]) -> [i32; 8] {
        let h01 = _mm256_hadd_epi32(v[0], v[1]);
        let h23 = _mm256_hadd_epi32(v[2], v[3]);
        let h45 = _mm256_hadd_epi32(v[4], v[5]);
        let h67 = _mm256_hadd_epi32(v[6], v[7]);
        // Lanes 0..4: v0..v3 over their lanes 0..4; lanes 4..8: over their lanes 4..8.
        let g0 = _mm256_hadd_epi32(h01, h23);
        let g1 = _mm256_hadd_epi32(h45, h67);
        let r = _mm256_add_epi32(
            _mm256_permute2x128_si256(g0, g1, 0x20),
            _mm256_permute2x128_si256(g0, g1, 0x31),
        );
        let mut out = [0i32; 8];
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, r);
        out
    }

    /// The sums of the lanes of `a[j]` (16) and `b[j]` (8) for `N <= 8` rows, reduced
    /// together (exact, integers).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    unsafe fn sums_of<const N: usize>(a: &[__m512i; N], b: &[__m256i; N]) -> ([i32; 8], [i32; 8]) {
        let fold = |v: __m512i| {
            _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1))
        };
        let z = _mm256_setzero_si256();
        if N == 1 {
            let h = _mm256_hadd_epi32(fold(a[0]), b[0]);
            let h = _mm256_hadd_epi32(h, h);
            // [Σa, Σb, Σa, Σb]
            let r = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let mut x = [0; 8];
            let mut y = [0; 8];
            x[0] = _mm_cvtsi128_si32(r);
            y[0] = _mm_extract_epi32(r, 1);
            (x, y)
        } else if N <= 4 {
            let mut v = [z; 8];
            for j in 0..N {
                v[j] = fold(a[j]);
                v[4 + j] = b[j];
            }
            let r = reduce8(v);
            let mut x = [0; 8];
            let mut y = [0; 8];
            x[..4].copy_from_slice(&r[..4]);
            y[..4].copy_from_slice(&r[4..]);
            (x, y)
        } else {
            let (mut u, mut v) = ([z; 8], [z; 8]);
            for j in 0..N {
                u[j] = fold(a[j]);
                v[j] = b[j];
            }
            (reduce8(u), reduce8(v))
        }
    }

    /// The sums of the 16 lanes of `a[j]` for `N <= 8` rows (exact, integers).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    unsafe fn isums_of<const N: usize>(a: &[__m512i; N]) -> [i32; 8] {
        let fold = |v: __m512i| {
            _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1))
        };
        if N == 1 {
            let h = fold(a[0]);
            let h = _mm256_hadd_epi32(h, h);
            let h = _mm256_hadd_epi32(h, h);
            let r = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            let mut x = [0; 8];
            x[0] = _mm_cvtsi128_si32(r);
            x
        } else {
            let mut v = [_mm256_setzero_si256(); 8];
            for j in 0..N {
                v[j] = fold(a[j]);
            }
            reduce8(v)
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn q4k_512<const N: usize>(a: &QArgs) {
        let w = &a.w;
        let m4 = _mm512_set1_epi8(0x0F);
        // From `[sc_0..8, m_0..8]` as 16-bit lanes: the scales of sub-blocks 4c, 4c + 1 (16
        // lanes each) and 4c + 2, 4c + 3 for c = 0, 1; the mins, each twice (one per 16
        // activations, like `bsums`).
        let lanes =
            |a: i16, b: i16| _mm512_inserti64x4(_mm512_set1_epi16(a), _mm256_set1_epi16(b), 1);
        let idx = [lanes(0, 1), lanes(2, 3), lanes(4, 5), lanes(6, 7)];
        let dup = _mm512_castsi256_si512(_mm256_setr_epi16(
            8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15,
        ));
        let ahead = prefetch_start(w);
        for o in 0..w.nrows {
            prefetch_row(w, o + ahead);
            let row = w.w.add(o * w.row_bytes);
            let srow = w.s.add(o * w.row_scales);
            let mut acc = [0f32; N];
            for b in 0..w.nblocks {
                let p = row.add(b * 140);
                let d = f16_at(srow.add(2 * b));
                let dmin = f16_at(srow.add(2 * b + 1));
                let sm = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(q4k_scale_min_sse(p)));
                let mins = _mm512_castsi512_si256(_mm512_permutexvar_epi16(dup, sm));
                let mut sumi = [_mm512_setzero_si512(); N];
                for c in 0..2 {
                    let q = _mm512_loadu_si512(p.add(12 + 64 * c) as *const _);
                    let lo = _mm512_and_si512(q, m4);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                    // Sub-blocks 4c, 4c + 1 (weights 128c..128c + 64) and 4c + 2, 4c + 3.
                    let w0 = _mm512_shuffle_i64x2(lo, hi, 0x44);
                    let w1 = _mm512_shuffle_i64x2(lo, hi, 0xEE);
                    let s0 = _mm512_permutexvar_epi16(idx[2 * c], sm);
                    let s1 = _mm512_permutexvar_epi16(idx[2 * c + 1], sm);
                    for (j, s) in sumi.iter_mut().enumerate() {
                        let x = a.qx.add(j * w.cols + 256 * b + 128 * c);
                        let x0 = _mm512_loadu_si512(x as *const _);
                        let x1 = _mm512_loadu_si512(x.add(64) as *const _);
                        let p0 = _mm512_madd_epi16(s0, _mm512_maddubs_epi16(w0, x0));
                        let p1 = _mm512_madd_epi16(s1, _mm512_maddubs_epi16(w1, x1));
                        *s = _mm512_add_epi32(*s, _mm512_add_epi32(p0, p1));
                    }
                }
                let mut summ = [_mm256_setzero_si256(); N];
                for (j, m) in summ.iter_mut().enumerate() {
                    let bs = _mm256_loadu_si256(a.bs.add(j * w.cols / 16 + 16 * b) as *const _);
                    *m = _mm256_madd_epi16(mins, bs);
                }
                let (is, ms) = sums_of(&sumi, &summ);
                for j in 0..N {
                    let dx = *a.dx.add(j * a.xblocks + b);
                    acc[j] = super::k_step(acc[j], is[j], ms[j], d, dmin, dx);
                }
            }
            for (j, v) in acc.iter().enumerate() {
                *w.y.add(j * w.y_stride + o) = *v;
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn q6k_512<const N: usize>(a: &QArgs) {
        let w = &a.w;
        let m4 = _mm512_set1_epi8(0x0F);
        let m3 = _mm512_set1_epi8(0x03);
        // `qh` bits for weights 0..32 / 32..64 of a half (low 256 bits / high), then 64..128.
        let sh_lo = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
        let sh_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
        let ahead = prefetch_start(w);
        for o in 0..w.nrows {
            prefetch_row(w, o + ahead);
            let row = w.w.add(o * w.row_bytes);
            let srow = w.s.add(o * w.row_scales);
            let mut acc = [0f32; N];
            for b in 0..w.nblocks {
                let p = row.add(b * 208);
                let d = f16_at(srow.add(b));
                let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
                let sc512 = _mm512_castsi256_si512(sc16);
                let mut sumi = [_mm512_setzero_si512(); N];
                for half in 0..2 {
                    let ql = _mm512_loadu_si512(p.add(64 * half) as *const _);
                    let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                        p.add(128 + 32 * half) as *const __m256i
                    ));
                    let hbits = |sh: __m512i| {
                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh), m3), 4)
                    };
                    // Weights 128·half + 0..64 and + 64..128.
                    let w0 = _mm512_or_si512(_mm512_and_si512(ql, m4), hbits(sh_lo));
                    let w1 = _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                        hbits(sh_hi),
                    );
                    // One scale per 16 weights, i.e. per 128-bit lane of the products.
                    let g = 8 * half as i16;
                    let idx = |g: i16| {
                        _mm512_set_epi16(
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 3,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 2,
                            g + 1,
                            g + 1,
                            g + 1,
                            g + 1,
                            g + 1,
                            g + 1,
                            g + 1,
                            g + 1,
                            g,
                            g,
                            g,
                            g,
                            g,
                            g,
                            g,
                            g,
                        )
                    };
                    let s0 = _mm512_permutexvar_epi16(idx(g), sc512);
                    let s1 = _mm512_permutexvar_epi16(idx(g + 4), sc512);
                    for (j, s) in sumi.iter_mut().enumerate() {
                        let x = a.qx.add(j * w.cols + 256 * b + 128 * half);
                        let x0 = _mm512_loadu_si512(x as *const _);
                        let x1 = _mm512_loadu_si512(x.add(64) as *const _);
                        let p0 = _mm512_madd_epi16(s0, _mm512_maddubs_epi16(w0, x0));
                        let p1 = _mm512_madd_epi16(s1, _mm512_maddubs_epi16(w1, x1));
                        *s = _mm512_add_epi32(*s, _mm512_add_epi32(p0, p1));
                    }
                }
                for (j, s) in sumi.iter_mut().enumerate() {
                    let bs = _mm256_loadu_si256(a.bs.add(j * w.cols / 16 + 16 * b) as *const _);
                    let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    *s = _mm512_sub_epi32(*s, _mm512_zextsi256_si512(corr));
                }
                let is = isums_of(&sumi);
                for j in 0..N {
                    let dx = *a.dx.add(j * a.xblocks + b);
                    acc[j] = super::k_step(acc[j], is[j], 0, d, 0.0, dx);
                }
            }
            for (j, v) in acc.iter().enumerate() {
                *w.y.add(j * w.y_stride + o) = *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;
    use rand::{Rng, SeedableRng};

    use super::super::tests::{isas, random, raw_blocks};
    use super::super::{Isa, QFormat, QWeight};
    use super::Q8Rows;

    const FORMATS: [QFormat; 5] = [
        QFormat::Q4_K,
        QFormat::Q6_K,
        QFormat::Q5_0,
        QFormat::Q8_0,
        QFormat::Q4_1,
    ];

    /// The f64 product with the dequantized weight, the bound on what rounding the
    /// activations can change (`Σ_i |w_i| · dx_i / 2`: each `a_i` is within half a step), and
    /// the product of the norms `|w_o|·|x_j|`.
    fn reference(w: &QWeight, x: &[f32], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (rows, cols, bl) = (w.rows(), w.cols(), w.format().block_len());
        let wf = w.dequantize();
        let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let mut want = vec![0f64; n * rows];
        let mut bound = vec![0f64; n * rows];
        let mut norms = vec![0f64; n * rows];
        for j in 0..n {
            let xj = &x[j * cols..(j + 1) * cols];
            let dx: Vec<f64> = xj
                .chunks_exact(bl)
                .map(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / 127.0)
                .collect();
            for o in 0..rows {
                let wo = &wf[o * cols..(o + 1) * cols];
                want[j * rows + o] = (0..cols).map(|i| wo[i] as f64 * xj[i] as f64).sum();
                bound[j * rows + o] = (0..cols)
                    .map(|i| (wo[i] as f64).abs() * dx[i / bl] / 2.0)
                    .sum();
                norms[j * rows + o] = norm(wo) * norm(xj);
            }
        }
        (want, bound, norms)
    }

    #[test]
    fn products_are_within_the_activation_rounding_of_the_f32_product() {
        let mut seed = 100;
        for format in FORMATS {
            let k = format.block_len() / super::super::BLOCK;
            for (rows, cols) in [(1, 32 * k), (37, 96 * k), (70, 224 * k), (200, 1536)] {
                let w = random(format, rows, cols, seed);
                for n in [1, 2, 3, 5, 8, 9, 13, 16, 37] {
                    seed += 1;
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                    let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-2f32..2.0)).collect();
                    let (want, bound, norms) = reference(&w, &x, n);
                    let scale = want.iter().fold(0f64, |a, b| a.max(b.abs()));
                    for isa in isas() {
                        let mut y = vec![f32::NAN; n * rows];
                        w.matmul_t_q8_with(isa, &x, n, &mut y).unwrap();
                        let mut worst = 0f64;
                        for i in 0..n * rows {
                            let err = (y[i] as f64 - want[i]).abs();
                            // f32 accumulation: far below the rounding bound.
                            let slack = 1e-5 * scale;
                            assert!(
                                err <= bound[i] + slack,
                                "{format:?} {isa:?} [{rows},{cols}] n={n} out {i}: {} vs {} \
                                 (bound {})",
                                y[i],
                                want[i],
                                bound[i]
                            );
                            worst = worst.max(err / norms[i]);
                        }
                        // The bound is for the worst case; random rounding errors cancel, and
                        // the error stays far below 1e-2 of |w|·|x|.
                        assert!(worst < 1e-2, "{format:?} {isa:?} n={n}: {worst}");
                    }
                }
            }
        }
    }

    /// Weights whose f16 scales are `2^-4` and activations with scale `2^-2` and small values:
    /// every product, sum and conversion is exact in f32, so the kernels must agree bit for bit
    /// exactly when their integer sums agree.
    #[test]
    fn integer_sums_agree_bit_for_bit_across_instruction_sets() {
        let mut seed = 7;
        for format in FORMATS {
            let bl = format.block_len();
            for (rows, cols) in [(3, bl), (21, 3 * bl), (40, 6 * bl)] {
                seed += 1;
                let mut raw = raw_blocks(format, rows, cols, seed);
                let d = f16::from_f32(0.0625).to_bits().to_le_bytes();
                for blk in raw.chunks_exact_mut(format.block_bytes()) {
                    match format {
                        QFormat::Q6_K => blk[208..].copy_from_slice(&d),
                        QFormat::Q4_K | QFormat::Q4_1 => {
                            blk[..2].copy_from_slice(&d);
                            blk[2..4].copy_from_slice(&d);
                        }
                        _ => blk[..2].copy_from_slice(&d),
                    }
                }
                let w = QWeight::from_raw(format, rows, cols, raw).unwrap();
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                for n in [1, 4, 7, 11, 16] {
                    let qs: Vec<i8> = (0..n * cols).map(|_| rng.gen_range(-16..=16)).collect();
                    let mut q = Q8Rows {
                        sx: Vec::new(),
                        dxe: Vec::new(),
                        block: bl,
                        cols,
                        bsums: qs
                            .chunks_exact(16)
                            .map(|c| c.iter().map(|v| *v as i16).sum())
                            .collect(),
                        qs,
                        d: vec![0.25; n * cols / bl],
                    };
                    if bl == 32 {
                        q.block32_extras();
                    }
                    let mut want = vec![0f32; n * rows];
                    w.product_q8(Isa::Scalar, &q, n, &mut want);
                    for isa in isas() {
                        let mut y = vec![f32::NAN; n * rows];
                        w.product_q8(isa, &q, n, &mut y);
                        let same = y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{format:?} {isa:?} [{rows},{cols}] n={n}");
                    }
                }
            }
        }
    }

    /// The K-quants combine each super-block's exact integer sums in the same f32 steps in
    /// every kernel (`k_step`), so the one-row kernels, the groups and the tiles of prompts
    /// (`tiles_apply`) give the scalar reference's values bit for bit, on any data.
    #[test]
    fn k_quant_kernels_and_tiles_equal_the_scalar_reference_bit_for_bit() {
        for format in [QFormat::Q4_K, QFormat::Q6_K] {
            for (rows, cols) in [(16, 256), (37, 512), (70, 768)] {
                let w = random(format, rows, cols, rows as u64);
                let mut rng = rand::rngs::StdRng::seed_from_u64(cols as u64);
                for n in [1, 5, 8, 15, 16, 17, 40] {
                    let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-3f32..3.0)).collect();
                    let mut want = vec![0f32; n * rows];
                    w.matmul_t_q8_with(Isa::Scalar, &x, n, &mut want).unwrap();
                    for isa in isas() {
                        let mut y = vec![f32::NAN; n * rows];
                        w.matmul_t_q8_with(isa, &x, n, &mut y).unwrap();
                        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                            assert_eq!(
                                a.to_bits(),
                                b.to_bits(),
                                "{format:?} {isa:?} [{rows},{cols}] n={n} out {i}: {a} vs {b} \
                                 (tiles: {})",
                                super::tiles_apply(isa, format, n)
                            );
                        }
                    }
                }
            }
        }
    }

    /// A row's result does not depend on the rows beside it (groups, tiles, instantiations).
    #[test]
    fn each_row_is_the_same_alone_and_in_any_batch() {
        for format in FORMATS {
            let cols = 3 * format.block_len();
            let w = random(format, 75, cols, 3);
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let x: Vec<f32> = (0..16 * cols).map(|_| rng.gen_range(-1f32..1.0)).collect();
            for isa in isas() {
                let mut all = vec![0f32; 16 * 75];
                w.matmul_t_q8_with(isa, &x, 16, &mut all).unwrap();
                for j in [0, 5, 15] {
                    let mut one = vec![0f32; 75];
                    w.matmul_t_q8_with(isa, &x[j * cols..(j + 1) * cols], 1, &mut one)
                        .unwrap();
                    assert_eq!(one, all[j * 75..(j + 1) * 75], "{format:?} {isa:?} row {j}");
                }
            }
        }
    }

    #[test]
    fn activations_round_to_nearest_with_sums() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
        let q = Q8Rows::quantize(QFormat::Q8_0, &x, 1, 64);
        for (b, xb) in x.chunks_exact(32).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(q.d[b], amax / 127.0);
            for (i, v) in xb.iter().enumerate() {
                let a = q.qs[32 * b + i] as f32;
                assert!((a - v * 127.0 / amax).abs() <= 0.5, "{v} -> {a}");
            }
        }
        assert_eq!(q.qs.iter().map(|v| v.abs()).max(), Some(127));
        for (g, s) in q.bsums.iter().enumerate() {
            let want: i16 = q.qs[16 * g..16 * g + 16].iter().map(|v| *v as i16).sum();
            assert_eq!(*s, want);
        }
        let zero = Q8Rows::quantize(QFormat::Q4_K, &[0.0; 256], 1, 256);
        assert!(zero.qs.iter().all(|v| *v == 0) && zero.d == [0.0]);
    }
}
