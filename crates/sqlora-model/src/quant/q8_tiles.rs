//! Register-blocked tiles of the integer products (AVX-512 VNNI): the K-quants' for several
//! activation rows, Q8_0's and Q5_0's for all.
//!
//! A tile is 16 weight rows, one per 32-bit lane, times up to [`TILE_X`] activation rows. The
//! weight rows' super-blocks are unpacked once per tile into bytes laid out
//! `[step of 4 weights][16 rows][4 bytes]` plus per-lane sub-block scales (the layout of
//! ggml's repacked `q4_K_8x8` kernels, 16 rows wide), so every `vpdpbusd` multiplies 4 weights of
//! 16 rows with 4 activations broadcast from one activation row, and the sub-block scale is
//! applied once per sub-block (`vpmulld`) instead of once per 32 products. The unpacking is paid
//! once per tile and shared by all activation rows. It transposes 16 rows at a time in
//! registers ([`transpose16`]) and decodes the scales of 16 rows at once, so it is cheap enough
//! for decode batches too (see [`super::tiles_apply`] for where it pays).
//!
//! Each lane computes its row's exact integer sums per super-block (`isum`, `msum`) and then
//! [`super::k_step`] on vectors, so a row's result is bit for bit that of the one-row kernels
//! and of the scalar reference, whatever the other rows of the tile. Q8_0 and Q5_0 tiles
//! ([`tile32`]) take 32-weight blocks the same way, pairs of blocks transposed per tile; they
//! round once per block in their own order, and take every product of those formats.

use std::arch::x86_64::*;

use super::super::{Args, QFormat};
use super::QArgs;

/// Weight rows per tile (32-bit lanes of a 512-bit register).
pub(super) const TILE: usize = 16;
/// Activation rows per tile (accumulators in registers: 3 per activation row). Measured with
/// `kquant_bench` on Zen 4: 4 is fastest; 6 and 8 spill and take 1.3–2× the time per row.
pub(super) const TILE_X: usize = 4;

/// One tile of 16 weight rows, unpacked (see the module docs).
pub(super) struct Unpacked {
    /// Per super-block 64 registers, lane `r` for row `r`. Q6_K: register `s` holds step `s`
    /// of 4 weights (weights `4s..4s + 4`) as 4 unsigned quants. Q4_K: register `8·pp + st`
    /// (of the first 32) holds the packed byte word `st` of sub-block pair `pp`, whose low
    /// nibbles are step `st` of sub-block `2pp` and high nibbles that of `2pp + 1`.
    q: Vec<__m512i>,
    /// Per super-block, per sub-block (Q4_K: 8 of 32 weights, Q6_K: 16 of 16): the sub-block
    /// scale of each row as an `i32` lane.
    sc: Vec<__m512i>,
    /// Per super-block 8 registers of `i16` pairs per lane: Q4_K `(m_j, m_j)` for sub-block
    /// `j`, Q6_K `(sc_2g, sc_2g+1)`: multiplied with pairs of 16-sums of the activations
    /// (`vpdpwssd`) they give `msum` (Q4_K) or `Σ_g sc_g·Σa` (Q6_K's `−32`).
    pairs: Vec<__m512i>,
    /// Per super-block `d` of each row.
    d: Vec<__m512>,
    /// Per super-block `dmin` of each row (Q4_K).
    dmin: Vec<__m512>,
}

impl Unpacked {
    /// Room for one tile of rows of `nb` super-blocks of `fmt`.
    pub(super) fn new(fmt: QFormat, nb: usize) -> Unpacked {
        // SAFETY: all-zero bits are valid vectors.
        let zi = unsafe { _mm512_setzero_si512() };
        let zf = unsafe { _mm512_setzero_ps() };
        let subs = if fmt == QFormat::Q4_K { 8 } else { 16 };
        Unpacked {
            q: vec![zi; 64 * nb],
            sc: vec![zi; subs * nb],
            pairs: vec![zi; 8 * nb],
            d: vec![zf; nb],
            dmin: vec![zf; nb],
        }
    }
}

/// `out[c]` lane `r` = `m[r]` lane `c`: a 16×16 transpose of 32-bit lanes (two rounds of
/// in-lane unpacks, two of 128-bit lane shuffles; 48 shuffles).
#[inline(always)]
unsafe fn transpose16(m: &[__m512i; 16]) -> [__m512i; 16] {
    let z = _mm512_setzero_si512();
    let mut t = [z; 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(m[2 * i], m[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(m[2 * i], m[2 * i + 1]);
    }
    // `u[4i + j]`, 128-bit lane `k`: rows `4i..4i + 4` of column `4k + j`.
    let mut u = [z; 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut out = [z; 16];
    for j in 0..4 {
        let a = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
        let b = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
        let c = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        let d = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
        out[j] = _mm512_shuffle_i32x4(a, c, 0x88);
        out[8 + j] = _mm512_shuffle_i32x4(a, c, 0xDD);
        out[4 + j] = _mm512_shuffle_i32x4(b, d, 0x88);
        out[12 + j] = _mm512_shuffle_i32x4(b, d, 0xDD);
    }
    out
}

/// The 64 bytes at `off` of each of the 16 rows `row(r)`, transposed: lane `r` of vector `c`
/// is row `r`'s 32-bit word `c` there.
#[inline(always)]
unsafe fn rows16(row: &impl Fn(usize) -> *const u8, off: usize) -> [__m512i; 16] {
    let mut m = [_mm512_setzero_si512(); 16];
    for (r, v) in m.iter_mut().enumerate() {
        *v = _mm512_loadu_si512(row(r).add(off) as *const _);
    }
    transpose16(&m)
}

/// Byte offsets `r · stride` of the 16 lanes, rows past `rows` repeating the last one.
#[inline(always)]
unsafe fn lane_offsets(rows: usize, stride: usize) -> __m512i {
    let offs: [i32; 16] = std::array::from_fn(|r| (r.min(rows - 1) * stride) as i32);
    _mm512_loadu_si512(offs.as_ptr() as *const _)
}

/// Unpacks rows `o..o + rows` (`1 ≤ rows ≤ 16`) of a Q4_K weight into `u` (lanes `0..rows`;
/// the others repeat the last row): the quants by transposing 16 rows at a time in registers,
/// the 6-bit scales and mins decoded on 16 rows at once (the word operations of
/// [`super::q4k_scale_min`], one row per lane).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn unpack_q4k(w: &Args, o: usize, rows: usize, u: &mut Unpacked) {
    let row = |r: usize| w.w.add((o + r.min(rows - 1)) * w.row_bytes);
    let offs = lane_offsets(rows, w.row_bytes);
    let soffs = lane_offsets(rows, 2 * w.row_scales);
    let srow = w.s.add(o * w.row_scales) as *const u8;
    let byte = _mm512_set1_epi32(0xFF);
    let (k1, k2, k3) = (
        _mm512_set1_epi32(0x3f3f_3f3f),
        _mm512_set1_epi32(0x0f0f_0f0f),
        _mm512_set1_epi32(0x0303_0303),
    );
    for b in 0..w.nblocks {
        for h in 0..2 {
            let t = rows16(&row, b * 140 + 12 + 64 * h);
            // Word `i = 16h + c` = 8·pp + st: sub-block 2pp in its low nibbles, 2pp + 1 high
            // (split in the product, where it costs one operation per 16 `vpdpbusd`s).
            for (c, v) in t.iter().enumerate() {
                u.q[64 * b + 16 * h + c] = *v;
            }
        }
        let base = w.w.add(o * w.row_bytes + b * 140);
        let u0 = _mm512_i32gather_epi32(offs, base as *const _, 1);
        let u1 = _mm512_i32gather_epi32(offs, base.add(4) as *const _, 1);
        let u2 = _mm512_i32gather_epi32(offs, base.add(8) as *const _, 1);
        let and = _mm512_and_si512;
        let u3 = _mm512_or_si512(
            and(_mm512_srli_epi32(u2, 4), k2),
            _mm512_slli_epi32(and(_mm512_srli_epi32(u1, 6), k3), 4),
        );
        let m_lo = and(u1, k1);
        let s_hi = _mm512_or_si512(
            and(u2, k2),
            _mm512_slli_epi32(and(_mm512_srli_epi32(u0, 6), k3), 4),
        );
        let s_lo = and(u0, k1);
        for j in 0..4 {
            let sh = _mm512_set1_epi32(8 * j as i32);
            let at = |v: __m512i| and(_mm512_srlv_epi32(v, sh), byte);
            u.sc[8 * b + j] = at(s_lo);
            u.sc[8 * b + 4 + j] = at(s_hi);
            let (m, m2) = (at(m_lo), at(u3));
            u.pairs[8 * b + j] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
            u.pairs[8 * b + 4 + j] = _mm512_or_si512(m2, _mm512_slli_epi32(m2, 16));
        }
        // `d` and `dmin`, adjacent f16s.
        let dd = _mm512_i32gather_epi32(soffs, srow.add(4 * b) as *const _, 1);
        u.d[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        u.dmin[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
    }
}

/// Unpacks rows `o..o + rows` (`1 ≤ rows ≤ 16`) of a Q6_K weight into `u` (lanes `0..rows`;
/// the others repeat the last row), as [`unpack_q4k`].
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn unpack_q6k(w: &Args, o: usize, rows: usize, u: &mut Unpacked) {
    let row = |r: usize| w.w.add((o + r.min(rows - 1)) * w.row_bytes);
    let offs = lane_offsets(rows, w.row_bytes);
    let (m4, m3) = (
        _mm512_set1_epi32(0x0F0F_0F0F),
        _mm512_set1_epi32(0x0303_0303),
    );
    for b in 0..w.nblocks {
        let p = b * 208;
        // Low 4 bits: words `16·half + 8·(k % 2) + s`; high 2 bits: words `8·half + s`.
        let lo = [rows16(&row, p), rows16(&row, p + 64)];
        let hi = rows16(&row, p + 128);
        for half in 0..2 {
            for k in 0..4 {
                for s in 0..8 {
                    let l = _mm512_and_si512(
                        _mm512_srlv_epi32(
                            lo[half][8 * (k % 2) + s],
                            _mm512_set1_epi32(4 * (k / 2) as i32),
                        ),
                        m4,
                    );
                    let h = _mm512_and_si512(
                        _mm512_srlv_epi32(hi[8 * half + s], _mm512_set1_epi32(2 * k as i32)),
                        m3,
                    );
                    // Weight e = 128·half + 32·k + 4·s: step e / 4.
                    u.q[64 * b + 32 * half + 8 * k + s] =
                        _mm512_or_si512(l, _mm512_slli_epi32(h, 4));
                }
            }
        }
        // The 16 signed 8-bit scales, four words per row.
        let base = w.w.add(o * w.row_bytes + p + 192);
        let mut sc = [_mm512_setzero_si512(); 16];
        for q in 0..4 {
            let words = _mm512_i32gather_epi32(offs, base.add(4 * q) as *const _, 1);
            for i in 0..4 {
                let up = _mm512_sllv_epi32(words, _mm512_set1_epi32(24 - 8 * i as i32));
                sc[4 * q + i] = _mm512_srai_epi32(up, 24);
            }
        }
        u.sc[16 * b..16 * b + 16].copy_from_slice(&sc);
        let low16 = _mm512_set1_epi32(0xFFFF);
        for gp in 0..8 {
            u.pairs[8 * b + gp] = _mm512_or_si512(
                _mm512_and_si512(sc[2 * gp], low16),
                _mm512_slli_epi32(sc[2 * gp + 1], 16),
            );
        }
        let d: [u16; 16] =
            std::array::from_fn(|r| *w.s.add((o + r.min(rows - 1)) * w.row_scales + b));
        u.d[b] = _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr() as *const _));
    }
}

/// The `i32` at `p` (4 quantized activations, or two `i16` sums) in every lane.
#[inline(always)]
unsafe fn bcast(p: *const u8) -> __m512i {
    _mm512_set1_epi32((p as *const i32).read_unaligned())
}

/// Q4_K: `C` activation rows from `j0` times the unpacked tile `u`, whose rows are output rows
/// `o..` (lanes in `mask`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn q4k_tile<const C: usize>(
    u: &Unpacked,
    a: &QArgs,
    j0: usize,
    o: usize,
    mask: u16,
) {
    let w = &a.w;
    let cols = w.cols;
    let (qp, scp, pp) = (u.q.as_ptr(), u.sc.as_ptr(), u.pairs.as_ptr());
    let x0 = a.qx.add(j0 * cols) as *const u8;
    let bs0 = a.bs.add(j0 * cols / 16) as *const u8;
    let m4 = _mm512_set1_epi32(0x0F0F_0F0F);
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..w.nblocks {
        let mut sb = [_mm512_setzero_si512(); C];
        for sub in 0..8 {
            let mut s = [_mm512_setzero_si512(); C];
            for st in 0..8 {
                // Sub-block `sub` is word `8·(sub / 2) + st`'s low (even) or high nibbles.
                let word = *qp.add(64 * b + 8 * (sub / 2) + st);
                let wv = if sub % 2 == 0 {
                    _mm512_and_si512(word, m4)
                } else {
                    _mm512_and_si512(_mm512_srli_epi32(word, 4), m4)
                };
                let at = 256 * b + 32 * sub + 4 * st;
                for (c, sc) in s.iter_mut().enumerate() {
                    *sc = _mm512_dpbusd_epi32(*sc, wv, bcast(x0.add(c * cols + at)));
                }
            }
            let scv = *scp.add(8 * b + sub);
            for c in 0..C {
                sb[c] = _mm512_add_epi32(sb[c], _mm512_mullo_epi32(s[c], scv));
            }
        }
        let (dv, dmv) = (u.d[b], u.dmin[b]);
        for c in 0..C {
            let bs = bs0.add(2 * (c * cols / 16 + 16 * b));
            let mut m = _mm512_setzero_si512();
            for sub in 0..8 {
                m = _mm512_dpwssd_epi32(m, *pp.add(8 * b + sub), bcast(bs.add(4 * sub)));
            }
            let t = _mm512_mul_ps(_mm512_cvtepi32_ps(sb[c]), dv);
            let t = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), dmv, t);
            let dx = *a.dx.add((j0 + c) * a.xblocks + b);
            acc[c] = _mm512_fmadd_ps(t, _mm512_set1_ps(dx), acc[c]);
        }
    }
    for (c, v) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(w.y.add((j0 + c) * w.y_stride + o), mask, *v);
    }
}

/// Q6_K: as [`q4k_tile`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn q6k_tile<const C: usize>(
    u: &Unpacked,
    a: &QArgs,
    j0: usize,
    o: usize,
    mask: u16,
) {
    let w = &a.w;
    let cols = w.cols;
    let (qp, scp, pp) = (u.q.as_ptr(), u.sc.as_ptr(), u.pairs.as_ptr());
    let x0 = a.qx.add(j0 * cols) as *const u8;
    let bs0 = a.bs.add(j0 * cols / 16) as *const u8;
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..w.nblocks {
        let mut sb = [_mm512_setzero_si512(); C];
        for g in 0..16 {
            let mut s = [_mm512_setzero_si512(); C];
            for st in 0..4 {
                let wv = *qp.add(64 * b + 4 * g + st);
                let at = 256 * b + 16 * g + 4 * st;
                for (c, sc) in s.iter_mut().enumerate() {
                    *sc = _mm512_dpbusd_epi32(*sc, wv, bcast(x0.add(c * cols + at)));
                }
            }
            let scv = *scp.add(16 * b + g);
            for c in 0..C {
                sb[c] = _mm512_add_epi32(sb[c], _mm512_mullo_epi32(s[c], scv));
            }
        }
        let dv = u.d[b];
        for c in 0..C {
            let bs = bs0.add(2 * (c * cols / 16 + 16 * b));
            let mut m = _mm512_setzero_si512();
            for gp in 0..8 {
                m = _mm512_dpwssd_epi32(m, *pp.add(8 * b + gp), bcast(bs.add(4 * gp)));
            }
            let isum = _mm512_sub_epi32(sb[c], _mm512_slli_epi32(m, 5));
            let t = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), dv);
            let dx = *a.dx.add((j0 + c) * a.xblocks + b);
            acc[c] = _mm512_fmadd_ps(t, _mm512_set1_ps(dx), acc[c]);
        }
    }
    for (c, v) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(w.y.add((j0 + c) * w.y_stride + o), mask, *v);
    }
}

/// One tile of 16 weight rows of Q8_0 or Q5_0, unpacked.
pub(super) struct Unpacked32 {
    /// Per pair of blocks 16 registers: lane `r` of register `c` holds weights `4c..4c + 4`
    /// of the pair in row `r`, unsigned (Q8_0 `w + 128`, Q5_0 its 5-bit quants).
    q: Vec<__m512i>,
    /// Per block `d` of each row.
    d: Vec<__m512>,
    /// The zero point of the unsigned weights: Q8_0 128, Q5_0 16.
    zero: i32,
}

impl Unpacked32 {
    /// Room for one tile of rows of `nb` blocks of `fmt`.
    pub(super) fn new(fmt: QFormat, nb: usize) -> Unpacked32 {
        // SAFETY: all-zero bits are valid vectors.
        let (zi, zf) = unsafe { (_mm512_setzero_si512(), _mm512_setzero_ps()) };
        Unpacked32 {
            q: vec![zi; 16 * nb.div_ceil(2)],
            d: vec![zf; nb],
            zero: if fmt == QFormat::Q8_0 { 128 } else { 16 },
        }
    }
}

/// Unpacks rows `o..o + rows` (`1 ≤ rows ≤ 16`) of Q8_0 or Q5_0 into `u` (lanes `0..rows`;
/// the others repeat the last row): each row's pair of blocks decoded into 64 unsigned bytes
/// as the one-row kernels decode it, then 16 rows transposed in registers.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn unpack32(fmt: QFormat, w: &Args, o: usize, rows: usize, u: &mut Unpacked32) {
    let (nb, qb) = (w.nblocks, fmt.qs_bytes());
    let row = |r: usize| o + r.min(rows - 1);
    for p in 0..nb.div_ceil(2) {
        let two = 2 * p + 1 < nb;
        let mut m = [_mm512_setzero_si512(); 16];
        for (r, v) in m.iter_mut().enumerate() {
            let at = w.w.add(row(r) * w.row_bytes + 2 * p * qb);
            *v = match fmt {
                QFormat::Q5_0 => super::simd::q5_0_pair(at, two),
                _ => super::simd::q8_0_pair(at, two),
            };
        }
        u.q[16 * p..16 * p + 16].copy_from_slice(&transpose16(&m));
    }
    for b in 0..nb {
        let d: [u16; 16] = std::array::from_fn(|r| *w.s.add(row(r) * w.row_scales + b));
        u.d[b] = _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr() as *const _));
    }
}

/// Q8_0 or Q5_0: `C` activation rows from `j0` times the unpacked tile `u`, whose rows are
/// output rows `o..` (lanes in `mask`). Per block and row the exact integer sum
/// `Σ (q − zero)·a` (the zero point through the activations' block sum), then
/// `acc += isum·(d·dx)` in f32, blocks in order: one rounding per block, and a row's result
/// does not depend on the other rows of the product.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn tile32<const C: usize>(
    u: &Unpacked32,
    a: &QArgs,
    j0: usize,
    o: usize,
    mask: u16,
) {
    let w = &a.w;
    let cols = w.cols;
    let qp = u.q.as_ptr();
    let x0 = a.qx.add(j0 * cols) as *const u8;
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..w.nblocks {
        let mut s = [_mm512_setzero_si512(); C];
        for st in 0..8 {
            let wv = *qp.add(16 * (b / 2) + 8 * (b % 2) + st);
            for (c, sc) in s.iter_mut().enumerate() {
                *sc = _mm512_dpbusd_epi32(*sc, wv, bcast(x0.add(c * cols + 32 * b + 4 * st)));
            }
        }
        for c in 0..C {
            let at = (j0 + c) * a.xblocks + b;
            let f = _mm512_mul_ps(u.d[b], _mm512_set1_ps(*a.dx.add(at)));
            let bs = a.bs.add(2 * at);
            let sa = *bs as i32 + *bs.add(1) as i32;
            let isum = _mm512_sub_epi32(s[c], _mm512_set1_epi32(u.zero * sa));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), f, acc[c]);
        }
    }
    for (c, v) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(w.y.add((j0 + c) * w.y_stride + o), mask, *v);
    }
}

/// Asks for rows `o..o + rows` of `w` (their blocks and scales) to be brought into L2: the next
/// tile's, while this one is computed. A tile reads 16 rows at once, a pattern the hardware
/// prefetchers follow poorly when the weights stream from memory (decode).
#[inline(always)]
unsafe fn prefetch_rows(w: &Args, o: usize, rows: usize) {
    let end = (o + rows).min(w.nrows);
    if o >= end {
        return;
    }
    prefetch_bytes(w.w.add(o * w.row_bytes), (end - o) * w.row_bytes);
    prefetch_bytes(
        w.s.add(o * w.row_scales) as *const u8,
        (end - o) * w.row_scales * 2,
    );
}

/// Asks for the `len` bytes at `p` to be brought into L2, one request per 64-byte line.
#[inline(always)]
unsafe fn prefetch_bytes(p: *const u8, len: usize) {
    for off in (0..len).step_by(64) {
        _mm_prefetch::<_MM_HINT_T1>(p.add(off) as *const i8);
    }
}

macro_rules! by_cols {
    ($f:ident, $m:expr, $($arg:expr),*) => {
        match $m {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            _ => unreachable!("{} activation rows per tile", $m),
        }
    };
}

/// All `n` activation rows of `a` times all its weight rows, tile by tile.
///
/// # Safety
/// AVX-512F/BW/VNNI must be available; `a` valid for `n` rows; `fmt` Q4_K or Q6_K.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn tiles512(fmt: QFormat, n: usize, a: &QArgs) {
    let w = &a.w;
    if !matches!(fmt, QFormat::Q4_K | QFormat::Q6_K) {
        return tiles32(fmt, n, a);
    }
    let mut u = Unpacked::new(fmt, w.nblocks);
    let mut o = 0;
    while o < w.nrows {
        let rows = (w.nrows - o).min(TILE);
        let mask = if rows == TILE {
            u16::MAX
        } else {
            (1u16 << rows) - 1
        };
        match fmt {
            QFormat::Q4_K => unpack_q4k(w, o, rows, &mut u),
            _ => unpack_q6k(w, o, rows, &mut u),
        }
        prefetch_rows(w, o + TILE, TILE);
        let mut j = 0;
        while j < n {
            let m = (n - j).min(TILE_X);
            match fmt {
                QFormat::Q4_K => by_cols!(q4k_tile, m, &u, a, j, o, mask),
                _ => by_cols!(q6k_tile, m, &u, a, j, o, mask),
            }
            j += m;
        }
        o += TILE;
    }
}

/// [`tiles512`] for Q8_0 and Q5_0.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn tiles32(fmt: QFormat, n: usize, a: &QArgs) {
    let w = &a.w;
    let mut u = Unpacked32::new(fmt, w.nblocks);
    let mut o = 0;
    while o < w.nrows {
        let rows = (w.nrows - o).min(TILE);
        let mask = if rows == TILE {
            u16::MAX
        } else {
            (1u16 << rows) - 1
        };
        unpack32(fmt, w, o, rows, &mut u);
        prefetch_rows(w, o + TILE, TILE);
        let mut j = 0;
        while j < n {
            let m = (n - j).min(TILE_X);
            by_cols!(tile32, m, &u, a, j, o, mask);
            j += m;
        }
        o += TILE;
    }
}
