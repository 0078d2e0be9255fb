//! SQL text in and out of the model: the gold answer on one line ([`one_line_sql`]), the SQL
//! pulled out of a model's output ([`extract_sql`], and [`answer_sql`] with the repairs)
//! and the test that a generated answer's
//! statement is over ([`statement_complete`]).
//!
//! All three read SQL through one quote-aware scanner ([`quoted_chars`]): nothing inside a
//! string literal or quoted identifier (`'…'`, `"…"`, `` `…` ``) ends a statement or is
//! reformatted. [`extract_sql`] cuts exactly where [`statement_complete`] says a statement
//! has ended, so a generation may stop there without changing the extracted SQL.

use sqlora_sql::schema::Schema;

/// Each character of `sql` with its byte offset and whether it lies inside a quoted string
/// or identifier (`'…'`, `"…"` or `` `…` ``). An opening quote counts as outside, its closing
/// quote as inside; a doubled quote (`'it''s'`) closes the string and opens the next.
fn quoted_chars(sql: &str) -> impl Iterator<Item = (usize, char, bool)> + '_ {
    let mut quote: Option<char> = None;
    sql.char_indices().map(move |(i, c)| match quote {
        Some(q) => {
            if c == q {
                quote = None;
            }
            (i, c, true)
        }
        None => {
            if matches!(c, '\'' | '"' | '`') {
                quote = Some(c);
            }
            (i, c, false)
        }
    })
}

/// The single-quoted string literals of `sql`, unescaped (`'it''s'` gives `it's`), in order;
/// quoted identifiers (`"…"`, `` `…` ``) are not literals.
pub fn string_literals(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    let mut ident: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = ident {
            if c == q {
                ident = None;
            }
            continue;
        }
        match c {
            '"' | '`' => ident = Some(c),
            '\'' => {
                let mut lit = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            lit.push('\'');
                        }
                        Some('\'') | None => break,
                        Some(ch) => lit.push(ch),
                    }
                }
                out.push(lit);
            }
            _ => {}
        }
    }
    out
}

/// Where the first statement of `text` ends, outside quotes: the byte offset of the first
/// `;`, or of the newline that starts the first blank line after some text. `None` while the
/// statement may still go on.
fn statement_end(text: &str) -> Option<usize> {
    let mut seen_text = false;
    let mut line_has_text = true;
    let mut last_newline = 0;
    for (i, c, quoted) in quoted_chars(text) {
        if quoted {
            continue;
        }
        match c {
            ';' => return Some(i),
            '\n' => {
                if !line_has_text && seen_text {
                    return Some(last_newline);
                }
                line_has_text = false;
                last_newline = i;
            }
            c if c.is_whitespace() => {}
            _ => {
                line_has_text = true;
                seen_text = true;
            }
        }
    }
    None
}

/// The body of the first ```` ``` ```` fence of `text` (a language tag such as `sql`
/// dropped), and whether the fence is closed; `None` without a fence.
fn fenced(text: &str) -> Option<(&str, bool)> {
    let start = text.find("```")?;
    let rest = &text[start + 3..];
    // A language tag runs to the end of the fence line.
    let body = match rest.find('\n') {
        Some(nl) if rest[..nl].trim().chars().all(|c| c.is_ascii_alphanumeric()) => &rest[nl + 1..],
        // ```sql SELECT …``` on one line
        _ if rest.len() > 4
            && rest.is_char_boundary(4)
            && rest[..3].eq_ignore_ascii_case("sql")
            && rest[3..4].chars().all(char::is_whitespace) =>
        {
            &rest[4..]
        }
        _ => rest,
    };
    Some(match body.find("```") {
        Some(end) => (&body[..end], true),
        None => (body, false),
    })
}

/// `sql` on one line: runs of whitespace outside quotes become one space,
/// trailing `;` and whitespace are removed.
pub fn one_line_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut pending_space = false;
    for (_, c, quoted) in quoted_chars(sql.trim()) {
        if quoted {
            out.push(c);
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    while out.ends_with(';') || out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The SQL of a model's output over `schema`: [`extract_sql`], then the two repairs made to
/// generated SQL: an answer that stopped in the middle of a statement is cut back to its last
/// complete one ([`sqlora_constrain::complete_prefix`]), and a select-list column read under
/// an alias whose table lacks it moves to the table of the FROM clause that has it
/// ([`sqlora_sql::requalify`]). A complete statement SQLite would prepare is never changed.
/// Every answer that is checked or run goes through this.
pub fn answer_sql(generated: &str, schema: &Schema) -> String {
    let sql = extract_sql(generated);
    let sql = sqlora_constrain::complete_prefix(&sql, schema).unwrap_or(sql);
    sqlora_sql::requalify(&sql, schema).unwrap_or(sql)
}

/// Pulls the SQL out of a model's output: takes the first ```` ``` ```` fenced
/// block if there is one (dropping a language tag such as `sql`), strips a
/// leading `SQL:` / `SQLQuery:` / `Answer:` label, cuts at the first `;` or
/// blank line outside quotes, and trims.
pub fn extract_sql(generated: &str) -> String {
    let text = fenced(generated).map_or(generated, |(body, _)| body);
    let mut text = text.trim_start();
    for label in ["sqlquery:", "sql query:", "sql:", "answer:", "query:"] {
        if text.len() >= label.len()
            && text.is_char_boundary(label.len())
            && text[..label.len()].eq_ignore_ascii_case(label)
        {
            text = text[label.len()..].trim_start();
            break;
        }
    }
    let end = statement_end(text).unwrap_or(text.len());
    text[..end].trim().to_string()
}

/// True once `answer` holds a whole statement: a `;` or a blank line outside quotes after
/// some text, the places where [`extract_sql`] cuts (or, for an answer in a Markdown code
/// fence, once the fence is closed). More text cannot change the extracted SQL then, unless
/// it opens a code fence.
pub fn statement_complete(answer: &str) -> bool {
    match fenced(answer) {
        Some((_, closed)) => closed,
        None => statement_end(answer).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_quoted_text() {
        assert_eq!(
            one_line_sql("SELECT  name\n FROM t\n\tWHERE x = 'a  b' ;\n"),
            "SELECT name FROM t WHERE x = 'a  b'"
        );
        assert_eq!(one_line_sql("SELECT 1;;"), "SELECT 1");
    }

    #[test]
    fn extract_sql_handles_model_output_shapes() {
        let cases = [
            ("SELECT a FROM t", "SELECT a FROM t"),
            ("  SELECT a FROM t;  extra words", "SELECT a FROM t"),
            (
                "```sql\nSELECT a\nFROM t;\n```\nThis query ...",
                "SELECT a\nFROM t",
            ),
            ("Here you go:\n```\nSELECT 1\n```", "SELECT 1"),
            (
                "SQL: SELECT b FROM u WHERE c = 'x;y'; more",
                "SELECT b FROM u WHERE c = 'x;y'",
            ),
            (
                "SELECT a FROM t\n\nExplanation: this selects a",
                "SELECT a FROM t",
            ),
            ("SELECT a\n  FROM t\n   \nnoise", "SELECT a\n  FROM t"),
            ("sqlquery: SELECT 2", "SELECT 2"),
            ("```sql SELECT 3 FROM t```", "SELECT 3 FROM t"),
            ("```SQL\nSELECT 4\n```", "SELECT 4"),
            (
                "SELECT \"a\n\nb\" FROM t\n\nmore",
                "SELECT \"a\n\nb\" FROM t",
            ),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(extract_sql(input), want, "input {input:?}");
        }
    }

    #[test]
    fn statements_are_complete_where_extract_sql_cuts() {
        for (text, complete) in [
            ("SELECT a FROM t", false),
            ("SELECT a FROM t;", true),
            ("SELECT a FROM t WHERE b = 'x;y'", false),
            ("SELECT a FROM t WHERE b = 'x;y';", true),
            ("SELECT a\nFROM t\n", false),
            ("SELECT a\nFROM t\n\n", true),
            ("SELECT a FROM t WHERE b = 'x\n\ny'", false),
            ("```sql\nSELECT a;", false),
            ("```sql\nSELECT a\n```", true),
        ] {
            assert_eq!(statement_complete(text), complete, "{text:?}");
            if complete {
                // Whatever follows (without a fence), the extracted SQL stays the same.
                for more in [" more words", "\nSELECT 2;", "'"] {
                    assert_eq!(
                        extract_sql(&format!("{text}{more}")),
                        extract_sql(text),
                        "{text:?} + {more:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_scanner_marks_quoted_text() {
        let marks: String = quoted_chars("a'b''c'd\"e\"")
            .map(|(_, _, q)| if q { 'q' } else { '.' })
            .collect();
        assert_eq!(marks, "..qq.qq..qq");
        assert_eq!(statement_end("\n\nSELECT 1\n\nx"), Some(10));
        assert_eq!(statement_end("  ;"), Some(2));
        assert_eq!(statement_end("SELECT 'a;b'"), None);
    }

    #[test]
    fn string_literals_are_unescaped_and_identifiers_are_not_literals() {
        assert_eq!(
            string_literals(
                "SELECT \"it's\" FROM t WHERE a = 'O''Brien' AND b LIKE '%Mixer%' AND c = ''"
            ),
            ["O'Brien", "%Mixer%", ""]
        );
        assert_eq!(string_literals("SELECT 1"), Vec::<String>::new());
        assert_eq!(string_literals("SELECT 'open"), ["open"]);
    }
}
