//! Python value semantics for result comparison.
//!
//! The official evaluator compares rows of Python values returned by the
//! `sqlite3` module: `int`, `float`, `str`, `bytes` and `None`. Equality is
//! Python's (`1 == 1.0`), hashing is consistent with it, and rows are sorted by
//! `str(v) + str(type(v))`. [`Cell`] reproduces those three behaviours.

use std::hash::{Hash, Hasher};

/// One result value with Python `==`/`hash` semantics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    None,
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

/// The integer a float is exactly equal to, if it is one that fits an `i64`.
fn float_as_exact_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every finite float in [-2^63, 2^63) with
    // no fractional part converts exactly.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_finite() && f.trunc() == f && (-TWO_63..TWO_63).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

impl PartialEq for Cell<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::None, Cell::None) => true,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Float(a), Cell::Float(b)) => a == b,
            (Cell::Int(i), Cell::Float(f)) | (Cell::Float(f), Cell::Int(i)) => {
                float_as_exact_i64(*f) == Some(*i)
            }
            (Cell::Str(a), Cell::Str(b)) => a == b,
            (Cell::Bytes(a), Cell::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

// NaN breaks reflexivity exactly as it does in Python (`nan != nan`); SQLite
// does not return NaN (it turns it into NULL), so this never matters in practice.
impl Eq for Cell<'_> {}

impl Hash for Cell<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Cell::Int(i) => {
                0u8.hash(state);
                i.hash(state);
            }
            Cell::Float(f) => match float_as_exact_i64(*f) {
                Some(i) => {
                    0u8.hash(state);
                    i.hash(state);
                }
                None => {
                    1u8.hash(state);
                    f.to_bits().hash(state);
                }
            },
            Cell::Str(s) => {
                2u8.hash(state);
                s.hash(state);
            }
            Cell::Bytes(b) => {
                3u8.hash(state);
                b.hash(state);
            }
            Cell::None => 4u8.hash(state),
        }
    }
}

impl Cell<'_> {
    /// `str(v) + str(type(v))`, the key `unorder_row` sorts by.
    pub(crate) fn sort_key(&self) -> String {
        match self {
            Cell::None => "None<class 'NoneType'>".to_string(),
            Cell::Int(i) => format!("{i}<class 'int'>"),
            Cell::Float(f) => format!("{}<class 'float'>", py_float_repr(*f)),
            Cell::Str(s) => format!("{s}<class 'str'>"),
            Cell::Bytes(b) => format!("{}<class 'bytes'>", py_bytes_repr(b)),
        }
    }
}

/// Python's `repr(float)` (which is also `str(float)`): the shortest digits
/// that round-trip, in fixed notation when the decimal exponent is in
/// `[-4, 16)`, else in scientific notation like `1e+16`.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let a = f.abs();
    if a == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "1.2345e17", "1e-5".
    let sci = format!("{a:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len() as i32;
    // value = 0.d1d2... * 10^decpt
    let decpt = exp + 1;
    let body = if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt < n {
            format!(
                "{}.{}",
                &digits[..decpt as usize],
                &digits[decpt as usize..]
            )
        } else {
            format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
        }
    } else {
        let e = decpt - 1;
        let m = if n > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let esign = if e < 0 { '-' } else { '+' };
        format!("{m}e{esign}{:02}", e.abs())
    };
    format!("{sign}{body}")
}

/// Python's `repr(bytes)`: `b'...'` with `\\`, `\t`, `\n`, `\r` and `\xNN`
/// escapes, using double quotes only when the data holds `'` and no `"`.
pub(crate) fn py_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.71, "2.71"),
            (100.0, "100.0"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "inf"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "repr({f:?})");
        }
    }

    #[test]
    fn float_repr_round_trips_and_picks_the_python_notation() {
        // A simple deterministic generator over many magnitudes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let r = py_float_repr(f);
            assert_eq!(r.parse::<f64>().unwrap(), f, "{r}");
            let a = f.abs();
            let scientific = r.contains('e');
            assert_eq!(scientific, a != 0.0 && !(1e-4..1e16).contains(&a), "{r}");
            if !scientific {
                assert!(r.contains('.'), "{r}");
            }
        }
    }

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(py_bytes_repr(b"ab"), "b'ab'");
        assert_eq!(py_bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(py_bytes_repr(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(py_bytes_repr(&[0, 255, b'\n']), "b'\\x00\\xff\\n'");
    }

    #[test]
    fn int_float_equality_and_hash_agree() {
        assert_eq!(Cell::Int(1), Cell::Float(1.0));
        assert_ne!(Cell::Int(1), Cell::Float(1.5));
        assert_ne!(Cell::Int(1), Cell::Str("1"));
        assert_eq!(Cell::None, Cell::None);
        assert_ne!(Cell::None, Cell::Int(0));
        // 2^53 + 1 is not equal to the float 2^53, exactly as in Python.
        assert_ne!(Cell::Int((1 << 53) + 1), Cell::Float(9007199254740992.0));
        assert_eq!(Cell::Float(0.0), Cell::Float(-0.0));
        let set: HashSet<Cell> = [
            Cell::Int(1),
            Cell::Float(1.0),
            Cell::Float(-0.0),
            Cell::Int(0),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn sort_keys_follow_python_str() {
        assert_eq!(Cell::Int(3).sort_key(), "3<class 'int'>");
        assert_eq!(Cell::Float(3.0).sort_key(), "3.0<class 'float'>");
        assert_eq!(Cell::None.sort_key(), "None<class 'NoneType'>");
        assert_eq!(Cell::Str("x").sort_key(), "x<class 'str'>");
    }
}
