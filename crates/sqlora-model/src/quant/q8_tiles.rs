//! Register-blocked tiles of the K-quant integer products for prompts (AVX-512 VNNI).
//!
//! A tile is 16 weight rows, one per 32-bit lane, times up to [`TILE_X`] activation rows. The
//! weight rows' super-blocks are unpacked once per tile into unsigned bytes laid out
//! `[step of 4 weights][16 rows][4 bytes]` plus per-lane sub-block scales (the layout of
//! ggml's repacked `q4_K_8x8` kernels, 16 rows wide), so every `vpdpbusd` multiplies 4 weights of
//! 16 rows with 4 activations broadcast from one activation row, and the sub-block scale is
//! applied once per sub-block (`vpmulld`) instead of once per 32 products. The unpacking is paid
//! once per tile and shared by all activation rows.
//!
//! Each lane computes its row's exact integer sums per super-block (`isum`, `msum`) and then
//! [`super::k_step`] on vectors, so a row's result is bit for bit that of the one-row kernels
//! and of the scalar reference, whatever the other rows of the tile.

use std::arch::x86_64::*;

use super::super::{Args, QFormat};
use super::QArgs;

/// Weight rows per tile (32-bit lanes of a 512-bit register).
pub(super) const TILE: usize = 16;
/// Activation rows per tile (accumulators in registers: 3 per activation row).
pub(super) const TILE_X: usize = 8;

/// One tile of 16 weight rows, unpacked (see the module docs).
pub(super) struct Unpacked {
    /// Per super-block 64 registers: step `s` of 4 weights (weights `4s..4s + 4`), lane `r`
    /// the 4 unsigned quants of row `r`.
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

/// f32 of the f16 at `p`.
#[inline]
#[target_feature(enable = "f16c")]
unsafe fn f16_at(p: *const u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(*p as i32)))
}

/// Lane `r` of vector `i` of `v` (a `u32` / `i32` / `f32` view).
#[inline(always)]
unsafe fn lane<T, V>(v: &mut [V], i: usize, r: usize) -> *mut T {
    (v.as_mut_ptr().add(i) as *mut T).add(r)
}

/// Unpacks rows `o..o + rows` (`rows <= 16`) of a Q4_K weight into `u` (lanes `0..rows`).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn unpack_q4k(w: &Args, o: usize, rows: usize, u: &mut Unpacked) {
    for r in 0..rows {
        let row = w.w.add((o + r) * w.row_bytes);
        let srow = w.s.add((o + r) * w.row_scales);
        for b in 0..w.nblocks {
            let p = row.add(b * 140);
            let sm = super::q4k_scale_min(std::slice::from_raw_parts(p, 12));
            for pp in 0..4 {
                for st in 0..8 {
                    let v = (p.add(12 + 32 * pp + 4 * st) as *const u32).read_unaligned();
                    // Sub-block 2pp: the low nibbles; 2pp + 1: the high ones.
                    *lane::<u32, _>(&mut u.q, 64 * b + 16 * pp + st, r) = v & 0x0F0F_0F0F;
                    *lane::<u32, _>(&mut u.q, 64 * b + 16 * pp + 8 + st, r) =
                        (v >> 4) & 0x0F0F_0F0F;
                }
            }
            for j in 0..8 {
                *lane::<i32, _>(&mut u.sc, 8 * b + j, r) = sm[j] as i32;
                let m = sm[8 + j] as u32;
                *lane::<u32, _>(&mut u.pairs, 8 * b + j, r) = m | (m << 16);
            }
            *lane::<f32, _>(&mut u.d, b, r) = f16_at(srow.add(2 * b));
            *lane::<f32, _>(&mut u.dmin, b, r) = f16_at(srow.add(2 * b + 1));
        }
    }
}

/// Unpacks rows `o..o + rows` (`rows <= 16`) of a Q6_K weight into `u` (lanes `0..rows`).
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn unpack_q6k(w: &Args, o: usize, rows: usize, u: &mut Unpacked) {
    for r in 0..rows {
        let row = w.w.add((o + r) * w.row_bytes);
        let srow = w.s.add((o + r) * w.row_scales);
        for b in 0..w.nblocks {
            let p = row.add(b * 208);
            for half in 0..2 {
                for k in 0..4 {
                    for l in (0..32).step_by(4) {
                        let v =
                            (p.add(64 * half + 32 * (k % 2) + l) as *const u32).read_unaligned();
                        let lo = (v >> (4 * (k / 2))) & 0x0F0F_0F0F;
                        let h = (p.add(128 + 32 * half + l) as *const u32).read_unaligned();
                        let hi = (h >> (2 * k)) & 0x0303_0303;
                        // Weight e = 128·half + 32·k + l: group e / 16, step (e % 16) / 4.
                        let e = 128 * half + 32 * k + l;
                        *lane::<u32, _>(&mut u.q, 64 * b + e / 4, r) = lo | (hi << 4);
                    }
                }
            }
            let sc = p.add(192) as *const i8;
            for g in 0..16 {
                *lane::<i32, _>(&mut u.sc, 16 * b + g, r) = *sc.add(g) as i32;
            }
            for gp in 0..8 {
                let s0 = *sc.add(2 * gp) as i16 as u16 as u32;
                let s1 = *sc.add(2 * gp + 1) as i16 as u16 as u32;
                *lane::<u32, _>(&mut u.pairs, 8 * b + gp, r) = s0 | (s1 << 16);
            }
            *lane::<f32, _>(&mut u.d, b, r) = f16_at(srow.add(b));
        }
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
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..w.nblocks {
        let mut sb = [_mm512_setzero_si512(); C];
        for sub in 0..8 {
            let mut s = [_mm512_setzero_si512(); C];
            for st in 0..8 {
                let wv = *qp.add(64 * b + 8 * sub + st);
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
