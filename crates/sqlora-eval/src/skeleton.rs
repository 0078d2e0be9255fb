//! Canonical SQL text and SQL skeletons.
//!
//! [`normalize_sql`] gives a canonical spelling of a query, so that two
//! spellings of the same query (case, whitespace, quoting, a trailing `;`)
//! compare equal; it is used for train/test leakage checks. [`skeleton`]
//! further replaces every literal by `_` and collapses `IN` lists, giving the
//! query's "SQL skeleton", used to split test items into seen/unseen
//! structures.
//!
//! Conventions (both functions work on the sqlparser tokenizer's tokens,
//! SQLite dialect):
//! * comments and whitespace are dropped and tokens are re-joined with single
//!   spaces (none before `,` `)` `.` or a function call's `(`, none after `(` `.`);
//! * unquoted words (keywords and identifiers) are lower-cased; identifiers in
//!   backticks or brackets are lower-cased and unquoted when they are plain
//!   names (otherwise written in backticks);
//! * `"text"` is read as a string literal, as Spider's own tokenizer does
//!   (Spider writes values in double quotes); all string literals are written
//!   in single quotes;
//! * `<>` is written `!=` and `==` is written `=`; trailing `;` are dropped.
//!
//! Text the tokenizer rejects (e.g. an unterminated quote) falls back to
//! whitespace collapsing and lower-casing.

use sqlparser::dialect::SQLiteDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A normalised token.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Keyword, identifier, operator or punctuation, already canonical.
    Text(String),
    /// A string literal's content.
    Str(String),
    /// A numeric literal as written.
    Num(String),
    /// Any other literal (hex/blob, placeholder), canonical text.
    OtherLit(String),
}

impl Tok {
    fn is_literal(&self) -> bool {
        !matches!(self, Tok::Text(_))
    }

    fn text(&self) -> String {
        match self {
            Tok::Text(s) | Tok::Num(s) | Tok::OtherLit(s) => s.clone(),
            Tok::Str(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn tokens(sql: &str) -> Option<Vec<Tok>> {
    let raw = Tokenizer::new(&SQLiteDialect {}, sql).tokenize().ok()?;
    let mut out: Vec<Tok> = raw
        .into_iter()
        .filter_map(|t| match t {
            Token::Whitespace(_) | Token::EOF => None,
            Token::Word(w) => Some(match w.quote_style {
                None => Tok::Text(w.value.to_lowercase()),
                Some('"') => Tok::Str(w.value),
                Some(_) => {
                    let v = w.value.to_lowercase();
                    if is_plain_name(&v) {
                        Tok::Text(v)
                    } else {
                        Tok::Text(format!("`{}`", v.replace('`', "``")))
                    }
                }
            }),
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::NationalStringLiteral(s)
            | Token::EscapedStringLiteral(s)
            | Token::UnicodeStringLiteral(s) => Some(Tok::Str(s)),
            Token::Number(n, _) => Some(Tok::Num(n)),
            Token::HexStringLiteral(h) => Some(Tok::OtherLit(format!("x'{}'", h.to_lowercase()))),
            Token::Placeholder(p) => Some(Tok::OtherLit(p)),
            Token::Neq => Some(Tok::Text("!=".into())),
            Token::DoubleEq => Some(Tok::Text("=".into())),
            other => Some(Tok::Text(other.to_string())),
        })
        .collect();
    while matches!(out.last(), Some(Tok::Text(t)) if t == ";") {
        out.pop();
    }
    Some(out)
}

/// Words after which `(` opens a sub-expression rather than a call.
const NON_CALL_WORDS: &[&str] = &[
    "in",
    "exists",
    "from",
    "join",
    "select",
    "where",
    "and",
    "or",
    "not",
    "on",
    "as",
    "union",
    "intersect",
    "except",
    "having",
    "by",
    "when",
    "then",
    "else",
    "values",
    "all",
    "any",
    "like",
    "between",
    "is",
    "case",
    "using",
    "limit",
    "offset",
    "with",
    "distinct",
    "glob",
    "escape",
];

fn join(toks: &[String]) -> String {
    let mut out = String::new();
    let mut prev: Option<&str> = None;
    for t in toks {
        if let Some(p) = prev {
            let call_paren = t == "(" && is_plain_name(p) && !NON_CALL_WORDS.contains(&p);
            let tight =
                matches!(t.as_str(), "," | ")" | ".") || matches!(p, "(" | ".") || call_paren;
            if !tight {
                out.push(' ');
            }
        }
        out.push_str(t);
        prev = Some(t);
    }
    out
}

fn fallback(sql: &str) -> String {
    let s = sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    s.trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_string()
}

/// Canonical text of a query: whitespace collapsed, unquoted words lower-cased,
/// trailing `;` dropped, quotes normalised (see the module docs).
pub fn normalize_sql(sql: &str) -> String {
    match tokens(sql) {
        Some(toks) => join(&toks.iter().map(Tok::text).collect::<Vec<_>>()),
        None => fallback(sql),
    }
}

/// Words after which a `-` is a sign, not a subtraction.
const SIGN_CONTEXT_WORDS: &[&str] = &[
    "select", "where", "and", "or", "not", "when", "then", "else", "limit", "offset", "between",
    "like", "having", "on", "is", "case", "in", "by", "values",
];

/// The query's SQL skeleton: [`normalize_sql`] with every literal (number,
/// string, including signed numbers) replaced by `_`, and every `IN` list of
/// literals collapsed to `in (_)`.
pub fn skeleton(sql: &str) -> String {
    let Some(toks) = tokens(sql) else {
        return fallback(sql);
    };
    // Literals → "_", folding a sign into the literal it precedes.
    let mut out: Vec<String> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let is_sign = matches!(t, Tok::Text(s) if s == "-" || s == "+");
        if is_sign && matches!(toks.get(i + 1), Some(Tok::Num(_))) {
            let unary = match out.last() {
                None => true,
                Some(p) => {
                    SIGN_CONTEXT_WORDS.contains(&p.as_str())
                        || !(is_plain_name(p) || p == ")" || p == "_" || p.starts_with('`'))
                }
            };
            if unary {
                out.push("_".into());
                i += 2;
                continue;
            }
        }
        out.push(if t.is_literal() { "_".into() } else { t.text() });
        i += 1;
    }
    // Collapse `in ( _ , _ , ... )` to `in ( _ )`.
    let mut collapsed: Vec<String> = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        if out[i] == "in" && out.get(i + 1).is_some_and(|t| t == "(") {
            let mut j = i + 2;
            let mut only_literals = true;
            let mut expect_value = true;
            while j < out.len() && out[j] != ")" {
                let ok = if expect_value {
                    out[j] == "_"
                } else {
                    out[j] == ","
                };
                if !ok {
                    only_literals = false;
                    break;
                }
                expect_value = !expect_value;
                j += 1;
            }
            if only_literals && j < out.len() && j > i + 2 && !expect_value {
                collapsed.extend(["in".to_string(), "(".into(), "_".into(), ")".into()]);
                i = j + 1;
                continue;
            }
        }
        collapsed.push(out[i].clone());
        i += 1;
    }
    join(&collapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_case_whitespace_and_semicolons() {
        let a = normalize_sql("SELECT  Name ,count( * )\nFROM singer WHERE age>20 ;");
        let b = normalize_sql("select name, COUNT(*) from SINGER where AGE > 20");
        assert_eq!(a, b);
        assert_eq!(a, "select name, count(*) from singer where age > 20");
    }

    #[test]
    fn normalize_unifies_quotes_and_operators() {
        assert_eq!(
            normalize_sql("SELECT x FROM t WHERE c = \"France\" AND d <> 1"),
            "select x from t where c = 'France' and d != 1"
        );
        assert_eq!(
            normalize_sql("SELECT x FROM t WHERE c = 'France' AND d != 1"),
            "select x from t where c = 'France' and d != 1"
        );
        assert_eq!(
            normalize_sql("SELECT `Name` FROM [Singer]"),
            "select name from singer"
        );
        assert_eq!(normalize_sql("SELECT 'it''s'"), "select 'it''s'");
    }

    #[test]
    fn normalize_keeps_literal_case_and_drops_comments() {
        assert_eq!(
            normalize_sql("SELECT a -- the a column\nFROM t WHERE b = 'MiXeD' /* c */"),
            "select a from t where b = 'MiXeD'"
        );
        assert_ne!(
            normalize_sql("SELECT a FROM t WHERE b = 'x'"),
            normalize_sql("SELECT a FROM t WHERE b = 'X'")
        );
    }

    #[test]
    fn normalize_spaces_calls_and_subqueries() {
        assert_eq!(
            normalize_sql("select T1.a from t as T1 where x in (select y from u)"),
            "select t1.a from t as t1 where x in (select y from u)"
        );
    }

    #[test]
    fn skeleton_replaces_literals() {
        assert_eq!(
            skeleton("SELECT name FROM singer WHERE age > 20 AND country = 'France' LIMIT 3"),
            "select name from singer where age > _ and country = _ limit _"
        );
        assert_eq!(
            skeleton("SELECT name FROM singer WHERE age > 45 AND country = \"Spain\" LIMIT 1"),
            skeleton("SELECT name FROM singer WHERE age > 20 AND country = 'France' LIMIT 3")
        );
    }

    #[test]
    fn skeleton_folds_signs_and_keeps_subtraction() {
        assert_eq!(
            skeleton("SELECT a FROM t WHERE b > -5"),
            "select a from t where b > _"
        );
        assert_eq!(skeleton("SELECT a - 1 FROM t"), "select a - _ from t");
        assert_eq!(skeleton("SELECT (a) - 1 FROM t"), "select (a) - _ from t");
    }

    #[test]
    fn skeleton_collapses_in_lists() {
        assert_eq!(
            skeleton("SELECT a FROM t WHERE b IN (1, 2, 3)"),
            "select a from t where b in (_)"
        );
        assert_eq!(
            skeleton("SELECT a FROM t WHERE b IN ('x')"),
            skeleton("SELECT a FROM t WHERE b IN ('x', 'y')")
        );
        // A subquery is structure, not a list of literals.
        assert_eq!(
            skeleton("SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = 1)"),
            "select a from t where b in (select c from u where d = _)"
        );
        // A list with a column reference is not collapsed.
        assert_eq!(
            skeleton("SELECT a FROM t WHERE b IN (1, c)"),
            "select a from t where b in (_, c)"
        );
    }

    #[test]
    fn different_structures_have_different_skeletons() {
        assert_ne!(
            skeleton("SELECT name FROM singer WHERE age > 20"),
            skeleton("SELECT name FROM singer WHERE age < 20")
        );
    }

    #[test]
    fn untokenizable_text_falls_back() {
        assert_eq!(
            normalize_sql("SELECT 'oops  FROM t;"),
            "select 'oops from t"
        );
    }
}
