//! Requalification: the one repair applied to generated SQL before the guard sees it.
//!
//! A model that writes the select list before the FROM clause often qualifies a column with
//! the wrong alias: `SELECT T2.first_name FROM crew_members AS T1 JOIN flight_crew AS T2 …`
//! where `first_name` is a column of `crew_members` (T1), not of `flight_crew` (T2). SQLite
//! refuses such a query (`no such column: T2.first_name`) although its intent is plain: the
//! column exists in exactly the FROM clause the query names. [`requalify`] rewrites the
//! qualifier of such a select-list column to the first table of the same FROM clause that has
//! the column, and changes nothing else (the edit is made on the text, by the parser's spans,
//! so the rest of the query keeps its spelling).
//!
//! Only a query SQLite would refuse is changed: a qualifier that names a base table of the
//! schema whose columns lack the column read under it. The schema-constrained decoder
//! (`sqlora-constrain`, `Options::requalify`) lets a row bind an alias such a select list read
//! under it exactly when this repair will find a table for each such column, so a finished
//! constrained answer is valid after this repair. Text-to-SQL systems repair the same class of
//! schema-linking slips after generation (DIN-SQL's self-correction, DAIL-SQL's
//! post-processing); here it is a deterministic rewrite checked by the guard afterwards.

use std::collections::HashSet;

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, Expr, Ident, InTarget, Query, Select, SelectItem, SetExpr, Spanned,
    Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Location;

use crate::schema::Schema;

/// A table of one FROM clause: the name it is referred to by, and its columns when it is a
/// base table of the schema (`None`: a subquery, a CTE, a table the schema lacks).
struct InFrom<'a> {
    name: String,
    table: Option<&'a crate::schema::Table>,
}

/// `sql` with every select-list column `q.c` whose qualifier `q` names a base table lacking
/// `c` requalified to the first table of the same FROM clause that has `c`; `None` when there
/// is nothing to change (or `sql` does not parse as one query).
pub fn requalify(sql: &str, schema: &Schema) -> Option<String> {
    let stmts = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
    let [stmt @ Statement::Query(_)] = stmts.as_slice() else {
        return None;
    };
    let mut v = Requalifier {
        schema,
        ctes: HashSet::new(),
        edits: Vec::new(),
    };
    let _ = stmt.visit(&mut v);
    if v.edits.is_empty() {
        return None;
    }
    let starts = line_starts(sql);
    let mut spans = Vec::with_capacity(v.edits.len());
    for (ident, new) in v.edits {
        let (a, b) = (
            offset(sql, &starts, ident.span.start)?,
            offset(sql, &starts, ident.span.end)?,
        );
        // The span must hold the identifier as written (bare or quoted), or nothing is edited.
        let text = sql.get(a..b)?;
        let quoted = text != ident.value;
        if quoted && unquote(text).as_deref() != Some(ident.value.as_str()) {
            return None;
        }
        // A quoted qualifier stays quoted: it may be glued to what precedes it (`SELECT"t".c`).
        spans.push((a, b, quote(&new, quoted)));
    }
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    spans.dedup_by_key(|s| s.0);
    let mut out = sql.to_string();
    for (a, b, new) in spans {
        out.replace_range(a..b, &new);
    }
    Some(out)
}

/// Visits every query of a statement (outer first, so CTE names are known before their use)
/// and collects the qualifiers to rewrite.
struct Requalifier<'s> {
    schema: &'s Schema,
    /// Names of the CTEs met so far (a FROM item of that name is not a base table).
    ctes: HashSet<String>,
    edits: Vec<(Ident, String)>,
}

impl Visitor for Requalifier<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        self.set_expr(&q.body);
        ControlFlow::Continue(())
    }
}

impl Requalifier<'_> {
    fn set_expr(&mut self, s: &SetExpr) {
        match s {
            SetExpr::Select(sel) => self.select(sel),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            // A parenthesized query is visited on its own.
            _ => {}
        }
    }

    /// The edits of one SELECT's own select list (subqueries inside it are visited on their
    /// own, with their own FROM clause).
    fn select(&mut self, sel: &Select) {
        let mut from: Vec<InFrom> = Vec::new();
        for twj in &sel.from {
            let factors =
                std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation));
            for factor in factors {
                match factor {
                    TableFactor::Table { name, alias, .. } => {
                        let Some(base) = name.0.last().and_then(|p| p.as_ident()) else {
                            continue;
                        };
                        let table = (!self.ctes.contains(&base.value.to_ascii_lowercase()))
                            .then(|| self.schema.table(&base.value))
                            .flatten();
                        let name = alias.as_ref().map_or(&base.value, |a| &a.name.value);
                        from.push(InFrom {
                            name: name.clone(),
                            table,
                        });
                    }
                    TableFactor::Derived { alias, .. } => from.push(InFrom {
                        name: alias
                            .as_ref()
                            .map_or(String::new(), |a| a.name.value.clone()),
                        table: None,
                    }),
                    _ => {}
                }
            }
        }
        let unique = |name: &str| {
            let mut it = from.iter().filter(|t| t.name.eq_ignore_ascii_case(name));
            it.next().filter(|_| it.next().is_none())
        };
        for item in &sel.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            // Spans of the subqueries inside the item: their names belong to them.
            let mut inner: Vec<(Location, Location)> = Vec::new();
            let _ = visit_expressions(expr, |e: &Expr| {
                match e {
                    Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => {
                        let sp = q.span();
                        inner.push((sp.start, sp.end));
                    }
                    Expr::In {
                        target: InTarget::Subquery(subquery),
                        ..
                    } => {
                        let sp = subquery.span();
                        inner.push((sp.start, sp.end));
                    }
                    Expr::CompoundIdentifier(parts) => {
                        let [q, c] = parts.as_slice() else {
                            return ControlFlow::<()>::Continue(());
                        };
                        let at = (q.span.start.line, q.span.start.column);
                        let nested = inner
                            .iter()
                            .any(|(a, b)| (a.line, a.column) <= at && at < (b.line, b.column));
                        let lacks = unique(&q.value)
                            .and_then(|t| t.table)
                            .is_some_and(|t| t.column(&c.value).is_none());
                        let target = from.iter().find(|t| {
                            t.table.is_some_and(|t| t.column(&c.value).is_some())
                                && unique(&t.name).is_some()
                        });
                        if let (false, true, Some(t)) = (nested, lacks, target) {
                            self.edits.push((q.clone(), t.name.clone()));
                        }
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
}

/// The byte offset of each line's start (sqlparser's locations are 1-based lines and columns
/// counted in characters).
fn line_starts(s: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(s.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn offset(s: &str, starts: &[usize], loc: Location) -> Option<usize> {
    let line_start = *starts.get((loc.line as usize).checked_sub(1)?)?;
    let col = (loc.column as usize).checked_sub(1)?;
    let rest = &s[line_start..];
    match rest.char_indices().nth(col) {
        Some((i, _)) => Some(line_start + i),
        None if rest.chars().count() == col => Some(line_start + rest.len()),
        None => None,
    }
}

/// The name a quoted identifier (`"a""b"`, `` `a``b` ``, `[a b]`) stands for.
fn unquote(text: &str) -> Option<String> {
    let close = match text.chars().next()? {
        '"' => '"',
        '`' => '`',
        '[' => ']',
        _ => return None,
    };
    let inner = text.get(1..text.len().checked_sub(1)?)?;
    if !text.ends_with(close) {
        return None;
    }
    Some(if close == ']' {
        inner.to_string()
    } else {
        inner.replace(&format!("{close}{close}"), &close.to_string())
    })
}

/// `name` as it can be written in SQL: bare when it is a plain identifier and `always` is false,
/// else double-quoted.
fn quote(name: &str, always: bool) -> String {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain && !always {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Table};

    fn table(name: &str, cols: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: cols
                .iter()
                .map(|c| Column {
                    name: (*c).into(),
                    decl_type: String::new(),
                    not_null: false,
                    samples: Vec::new(),
                })
                .collect(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            row_count: 0,
            view: false,
        }
    }

    fn schema() -> Schema {
        Schema {
            tables: vec![
                table("crew_members", &["crew_id", "first_name", "last_name"]),
                table("flight_crew", &["crew_id", "flight_id", "role"]),
                table("flights", &["flight_id", "flight_no"]),
            ],
        }
    }

    #[test]
    fn a_column_read_under_the_wrong_alias_moves_to_the_table_that_has_it() {
        let sql = "SELECT T2.first_name, T2.last_name, T2.role FROM crew_members AS T1 \
                   JOIN flight_crew AS T2 ON T1.crew_id = T2.crew_id";
        assert_eq!(
            requalify(sql, &schema()).as_deref(),
            Some(
                "SELECT T1.first_name, T1.last_name, T2.role FROM crew_members AS T1 \
                 JOIN flight_crew AS T2 ON T1.crew_id = T2.crew_id"
            )
        );
    }

    #[test]
    fn valid_queries_and_what_cannot_be_repaired_are_left_alone() {
        let s = schema();
        for sql in [
            "SELECT T1.first_name FROM crew_members AS T1",
            // No table of the FROM clause has the column.
            "SELECT T2.flight_no FROM crew_members AS T1 JOIN flight_crew AS T2 ON 1",
            // Outside the select list: the guard's business.
            "SELECT T1.crew_id FROM crew_members AS T1 JOIN flight_crew AS T2 \
             ON T1.crew_id = T2.crew_id WHERE T2.first_name = 'x'",
            // A subquery's columns are not known here.
            "SELECT s.first_name FROM (SELECT role FROM flight_crew) AS s",
            "not sql at all",
            "DELETE FROM flights",
        ] {
            assert_eq!(requalify(sql, &s), None, "{sql}");
        }
    }

    #[test]
    fn unaliased_tables_quoted_names_several_lines_and_compound_cores() {
        let s = schema();
        assert_eq!(
            requalify(
                "SELECT flights.first_name\nFROM flights JOIN crew_members ON 1",
                &s
            )
            .as_deref(),
            Some("SELECT crew_members.first_name\nFROM flights JOIN crew_members ON 1")
        );
        assert_eq!(
            requalify(
                "SELECT \"T2\".first_name FROM crew_members AS \"my t\" JOIN flight_crew AS T2 ON 1",
                &s
            )
            .as_deref(),
            Some(
                "SELECT \"my t\".first_name FROM crew_members AS \"my t\" JOIN flight_crew AS T2 ON 1"
            )
        );
        assert_eq!(
            requalify(
                "SELECT T1.role FROM flight_crew AS T1 UNION SELECT T2.first_name FROM \
                 crew_members AS T1 JOIN flight_crew AS T2 ON 1",
                &s
            )
            .as_deref(),
            Some(
                "SELECT T1.role FROM flight_crew AS T1 UNION SELECT T1.first_name FROM \
                 crew_members AS T1 JOIN flight_crew AS T2 ON 1"
            )
        );
    }

    #[test]
    fn a_quoted_qualifier_glued_to_select_stays_quoted() {
        assert_eq!(
            requalify(
                "SELECT\"flights\".first_name FROM\"flights\" JOIN crew_members AS c ON 1",
                &schema()
            )
            .as_deref(),
            Some("SELECT\"c\".first_name FROM\"flights\" JOIN crew_members AS c ON 1")
        );
    }

    #[test]
    fn quoted_names_with_doubled_quotes_are_matched_as_the_name_they_stand_for() {
        let s = Schema {
            tables: vec![table("mi\"ne", &["id"]), table("t", &["id", "i\"x"])],
        };
        assert_eq!(
            requalify(
                "SELECT \"mi\"\"ne\".`i\"x` FROM t JOIN \"mi\"\"ne\" ON 1",
                &s
            )
            .as_deref(),
            Some("SELECT \"t\".`i\"x` FROM t JOIN \"mi\"\"ne\" ON 1")
        );
        assert_eq!(unquote("[a b]").as_deref(), Some("a b"));
        assert_eq!(unquote("`a``b`").as_deref(), Some("a`b"));
        assert_eq!(unquote("\"x"), None);
    }

    #[test]
    fn a_subquery_in_a_select_list_is_repaired_in_its_own_scope_once() {
        let s = schema();
        assert_eq!(
            requalify(
                "SELECT f.flight_no, (SELECT T2.first_name FROM crew_members AS T1 JOIN \
                 flight_crew AS T2 ON T1.crew_id = T2.crew_id WHERE T2.flight_id = f.flight_id) \
                 FROM flights AS f",
                &s
            )
            .as_deref(),
            Some(
                "SELECT f.flight_no, (SELECT T1.first_name FROM crew_members AS T1 JOIN \
                 flight_crew AS T2 ON T1.crew_id = T2.crew_id WHERE T2.flight_id = f.flight_id) \
                 FROM flights AS f"
            )
        );
        // A CTE named like a base table is not that table.
        assert_eq!(
            requalify(
                "WITH flights AS (SELECT 1 AS first_name) SELECT T2.first_name FROM flights AS T2",
                &s
            ),
            None
        );
    }
}
