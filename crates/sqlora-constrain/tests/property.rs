//! Random schemas, random token sequences forced through the constraint: every statement the
//! constraint lets end is prepared by SQLite over that schema once requalified (the one repair
//! the pipeline makes, `sqlora_sql::requalify`), none names an unknown table or column, and the
//! repair never touches a statement SQLite prepares as it is.

mod common;

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use sqlora_constrain::{complete_prefix, SchemaIndex, SqlConstraint, Vocab};
use sqlora_model::constraint::Constraint;
use sqlora_sql::requalify;
use sqlora_sql::schema::{quote_ident, Schema};

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "zu", "ver", "tos", "pa", "ne", "rub", "ix",
];

fn name(rng: &mut StdRng, parts: usize) -> String {
    (0..parts)
        .map(|_| *SYLLABLES.choose(rng).unwrap())
        .collect::<Vec<_>>()
        .join("")
}

/// `n`, with `odd`, sometimes made odd the way real schemas are: a space, a double quote,
/// mixed case or a non-ASCII letter in it (no randomness is drawn without `odd`).
fn oddify(rng: &mut StdRng, n: String, odd: bool) -> String {
    if !odd || !rng.gen_bool(0.4) {
        return n;
    }
    let cut = n.len() / 2;
    match rng.gen_range(0..4) {
        0 => format!("{} {}", &n[..cut], &n[cut..]),
        1 => format!("{}\"{}", &n[..cut], &n[cut..]),
        2 => format!("{}{}", n[..1].to_uppercase(), &n[1..]),
        _ => format!("{n}é"),
    }
}

/// A random schema as DDL, with its table and column names; odd names ([`oddify`]) when
/// `odd`.
fn random_schema_with(rng: &mut StdRng, odd: bool) -> (String, Vec<String>, Vec<String>) {
    let mut tables: Vec<String> = Vec::new();
    let mut all_cols: Vec<String> = Vec::new();
    let mut ddl = String::new();
    for _ in 0..rng.gen_range(2..=4) {
        let t = name(rng, 2);
        let t = oddify(rng, t, odd);
        if tables.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            continue;
        }
        let mut cols: Vec<String> = vec!["id".into()];
        for _ in 0..rng.gen_range(1..=4) {
            let parts = rng.gen_range(1..=2);
            let c = name(rng, parts);
            let c = oddify(rng, c, odd);
            if !cols.iter().any(|x| x.eq_ignore_ascii_case(&c)) {
                cols.push(c);
            }
        }
        let quoted: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        ddl.push_str(&format!(
            "CREATE TABLE {} ({});\n",
            quote_ident(&t),
            quoted.join(", ")
        ));
        tables.push(t);
        all_cols.extend(cols);
    }
    all_cols.sort();
    all_cols.dedup();
    (ddl, tables, all_cols)
}

/// A vocabulary of SQL pieces: keywords, the schema's names (whole, split, misspelt, and
/// names from no table), punctuation, literals, whitespace.
fn vocab_for(rng: &mut StdRng, tables: &[String], cols: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for kw in [
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "HAVING",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "AS",
        "JOIN",
        "LEFT",
        "ON",
        "USING",
        "AND",
        "OR",
        "NOT",
        "IN",
        "IS",
        "NULL",
        "LIKE",
        "BETWEEN",
        "EXISTS",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "DISTINCT",
        "UNION",
        "ALL",
        "INTERSECT",
        "EXCEPT",
        "WITH",
        "ASC",
        "DESC",
        "count",
        "sum",
        "max",
        "lower",
        "coalesce",
        "CAST",
        "INTEGER",
        "COLLATE",
        "NOCASE",
    ] {
        v.push(format!(" {kw}"));
        v.push(kw.to_string());
    }
    for n in tables.iter().chain(cols) {
        v.push(format!(" {n}"));
        v.push(n.clone());
        let cut = (0..=n.len() / 2)
            .rev()
            .find(|&i| n.is_char_boundary(i))
            .unwrap_or(0);
        v.push(format!(" {}", &n[..cut]));
        v.push(n[cut..].to_string());
        v.push(format!("{n}x"));
        v.push(format!("\"{}\"", n.replace('"', "\"\"")));
        if n.contains(['"', ' ']) || !n.is_ascii() {
            // How a query writes an odd name, whole and in pieces.
            let q = quote_ident(n);
            let cut = (0..=q.len() / 2)
                .rev()
                .find(|&i| q.is_char_boundary(i))
                .unwrap_or(0);
            v.push(format!(" {q}"));
            v.push(format!(" {}", &q[..cut]));
            v.push(q[cut..].to_string());
            if !n.contains(']') {
                v.push(format!("[{n}]"));
            }
            v.push(format!("`{n}`"));
        }
    }
    for _ in 0..6 {
        v.push(format!(" {}", name(rng, 2)));
    }
    for p in [
        " (",
        "(",
        ")",
        " )",
        ",",
        ", ",
        ".",
        " =",
        "=",
        " <",
        ">",
        " <>",
        " !=",
        " +",
        "-",
        " *",
        "*",
        " /",
        " ||",
        ";",
        "\n",
        " ",
        "\n\n",
        " 1",
        "2",
        " 0",
        "3.5",
        " 'a'",
        " '",
        "x'",
        "'",
        "''",
        " T1",
        " T2",
        "T1.",
        "T2.",
        " t",
        " cnt",
        "_",
        " SELECT *",
        " --",
        " ?",
    ] {
        v.push(p.to_string());
    }
    // Every printable byte on its own, as a byte-level BPE vocabulary has: any valid prefix
    // can then be completed, so a walk with nothing allowed is a real dead end. (The non-ASCII
    // letters of odd names stand for their bytes.)
    for b in b' '..=b'~' {
        v.push((b as char).to_string());
    }
    for c in tables.iter().chain(cols).flat_map(|n| n.chars()) {
        if !c.is_ascii() {
            v.push(c.to_string());
        }
    }
    v.sort();
    v.dedup();
    v
}

/// What SQLite says about `sql` over the schema of `conn`.
fn prepare_error(conn: &Connection, sql: &str) -> Option<String> {
    conn.prepare(sql).err().map(|e| e.to_string())
}

#[test]
fn forced_token_sequences_never_end_with_unknown_names() {
    // SQLORA_CONSTRAIN_SEED=n explores another part of the space.
    let seed = std::env::var("SQLORA_CONSTRAIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0de_u64);
    walks(seed, 40, false, 150);
}

/// The same over schemas with odd names (spaces, double quotes, mixed case, non-ASCII
/// letters), written quoted, with doubled quotes, in brackets and backticks, and unquoted
/// (which must not get far).
#[test]
fn forced_token_sequences_over_odd_names_never_end_with_unknown_names() {
    let seed = std::env::var("SQLORA_CONSTRAIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0dd_5eed_u64);
    walks(seed, 12, true, 40);
}

/// `schemas` random schemas (odd names when `odd`), 50 forced walks each: at least
/// `min_ended` statements end, SQLite prepares every one, no walk gets stuck. Unfinished
/// walks cut back by `complete_prefix` (an answer out of tokens) are statements SQLite
/// prepares too.
fn walks(seed: u64, schemas: usize, odd: bool, min_ended: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Which unfinished prefixes are cut: a stream of its own, so the walks stay the same.
    let mut cut_rng = StdRng::seed_from_u64(seed ^ 0xC07);
    let mut cuts = 0;
    let mut ended = 0;
    let mut stuck = 0;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut longest = 0;
    let mut requalified = 0;
    for _schema in 0..schemas {
        let (ddl, tables, cols) = random_schema_with(&mut rng, odd);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&ddl).unwrap();
        let schema = Schema::from_connection(&conn, 0).unwrap();
        let index = SchemaIndex::new(&schema);
        let texts = vocab_for(&mut rng, &tables, &cols);
        let eos = texts.len() as u32;
        let mut bytes: Vec<Option<Vec<u8>>> =
            texts.iter().map(|t| Some(t.as_bytes().to_vec())).collect();
        bytes.push(None);
        let vocab = Arc::new(Vocab::from_parts(bytes, &[eos]));
        for _walk in 0..50 {
            let mut c = SqlConstraint::with_index(
                index.clone(),
                vocab.clone(),
                "SELECT",
                Default::default(),
            )
            .unwrap();
            let mut text = String::from("SELECT");
            for step in 0..100 {
                let allowed: Vec<u32> = (0..=eos).filter(|&t| c.allows(t)).collect();
                // After the first asks the constraint answers from its whole-vocabulary mask:
                // the same answers as reading each token on a copy of the state.
                let state = c.state();
                let reference: Vec<u32> = (0..eos)
                    .filter(|&t| {
                        if state.is_ended() {
                            return texts[t as usize].bytes().all(|b| b.is_ascii_whitespace());
                        }
                        state.clone().feed_str(&texts[t as usize])
                    })
                    .chain(state.can_end().then_some(eos))
                    .collect();
                assert_eq!(allowed, reference, "after {text:?}");
                // The whole-vocabulary walk (what `allows` answers from after MASK_AFTER asks
                // at one position) gives the same answers.
                let mask = c.allowed_mask();
                let walked: Vec<u32> = (0..=eos)
                    .filter(|&t| mask[t as usize / 64] & (1 << (t % 64)) != 0)
                    .collect();
                assert_eq!(walked, reference, "mask after {text:?}");
                if allowed.is_empty() {
                    stuck += 1;
                    if stuck <= 15 {
                        eprintln!("stuck after {text:?}\n  over {ddl:?}");
                    }
                    break;
                }
                let end_ok = allowed.contains(&eos);
                if !end_ok && cut_rng.gen_bool(0.2) {
                    // What the pipeline runs when an answer stops here, out of tokens.
                    if let Some(cut) = complete_prefix(&text, &schema) {
                        cuts += 1;
                        let fixed = requalify(&cut, &schema).unwrap_or(cut);
                        if let Some(e) = prepare_error(&conn, &fixed) {
                            errors.push((format!("cut of {text:?}: {fixed}"), e));
                        }
                    }
                }
                let pick = if end_ok && (step > 30 || rng.gen_bool(0.3)) {
                    eos
                } else {
                    // Mostly the longer pieces (keywords, names, punctuation), sometimes a
                    // single byte.
                    let long = rng.gen_bool(0.8);
                    let others: Vec<u32> = allowed
                        .iter()
                        .copied()
                        .filter(|&t| t != eos && (!long || texts[t as usize].len() > 1))
                        .collect();
                    let others = if others.is_empty() {
                        allowed.iter().copied().filter(|&t| t != eos).collect()
                    } else {
                        others
                    };
                    match others.choose(&mut rng) {
                        Some(&t) => t,
                        None => eos,
                    }
                };
                c.accept(pick);
                if pick == eos {
                    ended += 1;
                    longest = longest.max(text.len());
                    // What the pipeline runs: the text after the one repair made to answers
                    // (`Options::requalify`), which never touches a statement SQLite prepares.
                    let fixed = requalify(&text, &schema);
                    if fixed.is_some() {
                        requalified += 1;
                        assert!(
                            prepare_error(&conn, &text).is_some(),
                            "requalified a statement SQLite prepares: {text}"
                        );
                    }
                    if let Some(e) = prepare_error(&conn, fixed.as_deref().unwrap_or(&text)) {
                        errors.push((text.clone(), e));
                    }
                    break;
                }
                text.push_str(&texts[pick as usize]);
            }
        }
    }
    eprintln!(
        "{ended} statements ended (longest {longest} bytes, {requalified} requalified), {cuts} \
         unfinished ones cut back, {stuck} walks stuck, {} refused by SQLite",
        errors.len()
    );
    assert!(cuts > 0, "no unfinished walk was cut back");
    for (sql, e) in errors.iter().take(40) {
        eprintln!("  {e}: {sql}");
    }
    let unknown: Vec<_> = errors
        .iter()
        .filter(|(_, e)| e.contains("no such table") || e.contains("no such column"))
        .collect();
    assert!(unknown.is_empty(), "unknown names: {unknown:?}");
    assert!(ended > min_ended, "only {ended} statements ended");
    assert!(
        errors.is_empty(),
        "{} statements refused by SQLite",
        errors.len()
    );
    assert_eq!(stuck, 0, "walks with nothing allowed");
}
