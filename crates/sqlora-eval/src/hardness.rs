//! Spider's hardness classifier (`Evaluator.eval_hardness` in Spider's
//! `evaluation.py`, with `count_component1`, `count_component2` and
//! `count_others`), computed over the sqlparser AST (SQLite dialect) instead of
//! Spider's own SQL dict.
//!
//! Mapping of Spider's parsed SQL onto the AST:
//! * The classified query is the *top-level* SELECT. For `A UNION B` (any
//!   chain of set operations) that is the leftmost SELECT `A`, and the set
//!   operation counts once as a nested query; an `ORDER BY`/`LIMIT` written
//!   after a set operation belongs to the rightmost query in Spider's parse,
//!   so it does not count for the top level.
//! * Conditions are flattened into condition units joined by `and`/`or`
//!   (parentheses around `and`/`or` groups are flattened too). `ON`
//!   conditions of all joins form `from.conds`, joined by `and`.
//! * A condition unit has `not_op` set for `NOT IN`, `NOT LIKE`,
//!   `NOT BETWEEN` and `NOT <cond>`.
//! * Spider's quirks are kept: `count_agg` over WHERE condition units counts
//!   the units with `not_op` (it reads `cond_unit[0]`), and over HAVING it
//!   counts every `and`/`or` connector plus the units with `not_op`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, InTarget,
    JoinConstraint, JoinOperator, LimitClause, OrderByKind, Query, Select, SelectItem, SetExpr,
    Statement, TableFactor, TableWithJoins, UnaryOperator,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::EvalError;

/// Spider's difficulty levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// `easy`
    Easy,
    /// `medium`
    Medium,
    /// `hard`
    Hard,
    /// `extra` (extra hard)
    Extra,
}

impl Difficulty {
    /// All levels, easiest first.
    pub const ALL: [Difficulty; 4] = [
        Difficulty::Easy,
        Difficulty::Medium,
        Difficulty::Hard,
        Difficulty::Extra,
    ];

    /// The lower-case name Spider uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
            Difficulty::Extra => "extra",
        }
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Difficulty {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "easy" => Ok(Difficulty::Easy),
            "medium" => Ok(Difficulty::Medium),
            "hard" => Ok(Difficulty::Hard),
            "extra" | "extra hard" | "extra-hard" => Ok(Difficulty::Extra),
            other => Err(EvalError::BadDifficulty(other.to_string())),
        }
    }
}

/// The three counts Spider's classifier is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardnessCounts {
    /// `count_component1`: WHERE, GROUP BY, ORDER BY, LIMIT, joins, ORs, LIKEs.
    pub component1: usize,
    /// `count_component2`: nested queries (set operations, subqueries in conditions).
    pub component2: usize,
    /// `count_others`: several aggregates, select columns, where conditions, group-by columns.
    pub others: usize,
}

impl HardnessCounts {
    /// The thresholds of `Evaluator.eval_hardness`, verbatim.
    pub fn difficulty(&self) -> Difficulty {
        let (c1, c2, o) = (self.component1, self.component2, self.others);
        if c1 <= 1 && o == 0 && c2 == 0 {
            Difficulty::Easy
        } else if (o <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && o < 2 && c2 == 0) {
            Difficulty::Medium
        } else if (o > 2 && c1 <= 2 && c2 == 0)
            || (2 < c1 && c1 <= 3 && o <= 2 && c2 == 0)
            || (c1 <= 1 && o == 0 && c2 <= 1)
        {
            Difficulty::Hard
        } else {
            Difficulty::Extra
        }
    }
}

/// Spider hardness of one SQL query.
pub fn hardness(sql: &str) -> Result<Difficulty, EvalError> {
    Ok(hardness_counts(sql)?.difficulty())
}

/// The component counts behind [`hardness`].
pub fn hardness_counts(sql: &str) -> Result<HardnessCounts, EvalError> {
    let query = parse_query(sql)?;
    let top = top_unit(&query)
        .ok_or_else(|| EvalError::Unsupported(format!("not a SELECT query: {sql}")))?;
    Ok(counts(&top))
}

/// Parses exactly one statement that must be a query.
pub(crate) fn parse_query(sql: &str) -> Result<Box<Query>, EvalError> {
    let parse_err = |message: String| EvalError::Parse {
        sql: sql.to_string(),
        message,
    };
    let mut stmts =
        Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| parse_err(e.to_string()))?;
    if stmts.len() != 1 {
        return Err(parse_err(format!(
            "expected exactly one statement, found {}",
            stmts.len()
        )));
    }
    match stmts.pop() {
        Some(Statement::Query(q)) => Ok(q),
        _ => Err(EvalError::Unsupported(format!("not a SELECT query: {sql}"))),
    }
}

/// The top-level SELECT with the clauses Spider attributes to it.
struct Unit<'a> {
    select: &'a Select,
    order_by: Vec<&'a Expr>,
    limit: bool,
    set_op: bool,
}

fn leftmost(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::SetOperation { left, .. } => leftmost(left),
        SetExpr::Query(q) => leftmost(&q.body),
        _ => None,
    }
}

fn top_unit(query: &Query) -> Option<Unit<'_>> {
    match query.body.as_ref() {
        SetExpr::Select(select) => {
            let order_by = match &query.order_by {
                Some(ob) => match &ob.kind {
                    OrderByKind::Expressions(exprs) => exprs.iter().map(|e| &e.expr).collect(),
                    OrderByKind::All(_) => Vec::new(),
                },
                None => Vec::new(),
            };
            let limit = match &query.limit_clause {
                Some(LimitClause::LimitOffset { limit, .. }) => limit.is_some(),
                Some(LimitClause::OffsetCommaLimit { .. }) => true,
                None => false,
            };
            Some(Unit {
                select,
                order_by,
                limit,
                set_op: false,
            })
        }
        SetExpr::SetOperation { left, .. } => Some(Unit {
            select: leftmost(left)?,
            order_by: Vec::new(),
            limit: false,
            set_op: true,
        }),
        SetExpr::Query(q) => top_unit(q),
        _ => None,
    }
}

/// A condition flattened Spider-style: units and the connectors between them.
#[derive(Default)]
struct Condition<'a> {
    units: Vec<&'a Expr>,
    ors: usize,
    connectors: usize,
}

impl<'a> Condition<'a> {
    fn add(&mut self, e: &'a Expr) {
        match e {
            Expr::BinaryOp { left, op, right }
                if matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
            {
                self.add(left);
                self.connectors += 1;
                if *op == BinaryOperator::Or {
                    self.ors += 1;
                }
                self.add(right);
            }
            Expr::Nested(inner)
                if matches!(
                    inner.as_ref(),
                    Expr::BinaryOp {
                        op: BinaryOperator::And | BinaryOperator::Or,
                        ..
                    }
                ) =>
            {
                self.add(inner)
            }
            other => self.units.push(other),
        }
    }

    /// Appends another condition joined by `and`.
    fn and(&mut self, e: &'a Expr) {
        if !self.units.is_empty() {
            self.connectors += 1;
        }
        self.add(e);
    }

    fn likes(&self) -> usize {
        self.units.iter().filter(|u| is_like(u)).count()
    }

    fn nots(&self) -> usize {
        self.units.iter().filter(|u| has_not(u)).count()
    }

    fn subqueries(&self) -> usize {
        self.units.iter().map(|u| count_subqueries(u)).sum()
    }
}

fn strip_not(e: &Expr) -> &Expr {
    match e {
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => strip_not(expr),
        Expr::Nested(inner) => strip_not(inner),
        other => other,
    }
}

fn is_like(e: &Expr) -> bool {
    matches!(strip_not(e), Expr::Like { .. } | Expr::ILike { .. })
}

fn has_not(e: &Expr) -> bool {
    match e {
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        Expr::Nested(inner) => has_not(inner),
        Expr::Like { negated, .. }
        | Expr::ILike { negated, .. }
        | Expr::In { negated, .. }
        | Expr::Between { negated, .. } => *negated,
        _ => false,
    }
}

/// Direct sub-expressions of `e` (not descending into subqueries).
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryOp { left, right, .. } => vec![left, right],
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::IsTrue(expr)
        | Expr::IsNotTrue(expr)
        | Expr::IsFalse(expr)
        | Expr::IsNotFalse(expr)
        | Expr::IsUnknown(expr)
        | Expr::IsNotUnknown(expr)
        | Expr::Cast { expr, .. }
        | Expr::Collate { expr, .. } => vec![expr],
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => vec![a, b],
        Expr::In { expr, target, .. } => {
            let mut v: Vec<&Expr> = vec![expr];
            if let InTarget::List(list) = target {
                v.extend(list.iter());
            }
            v
        }
        Expr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            vec![expr, pattern]
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let mut v: Vec<&Expr> = Vec::new();
            if let Some(o) = operand {
                v.push(o);
            }
            for c in conditions {
                v.push(&c.condition);
                v.push(&c.result);
            }
            if let Some(e) = else_result {
                v.push(e);
            }
            v
        }
        Expr::Function(f) => match &f.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => Some(e),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        Expr::Tuple(items) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Subqueries directly inside a condition unit (Spider's `val1`/`val2` that are SQL).
fn count_subqueries(e: &Expr) -> usize {
    let own = match e {
        Expr::Subquery(_)
        | Expr::Exists { .. }
        | Expr::In {
            target: InTarget::Subquery(_),
            ..
        } => 1,
        _ => 0,
    };
    own + children(e).into_iter().map(count_subqueries).sum::<usize>()
}

const AGG_FUNCS: [&str; 5] = ["max", "min", "count", "sum", "avg"];

fn is_agg_call(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|id| AGG_FUNCS.contains(&id.value.to_ascii_lowercase().as_str())),
        _ => false,
    }
}

/// Aggregate calls in `e` (an aggregate's own arguments are not searched).
fn count_aggs(e: &Expr) -> usize {
    if is_agg_call(e) {
        return 1;
    }
    children(e).into_iter().map(count_aggs).sum()
}

fn table_units(twj: &TableWithJoins) -> usize {
    fn factor(f: &TableFactor) -> usize {
        match f {
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => table_units(table_with_joins),
            _ => 1,
        }
    }
    factor(&twj.relation) + twj.joins.iter().map(|j| factor(&j.relation)).sum::<usize>()
}

fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

fn collect_on<'a>(twj: &'a TableWithJoins, cond: &mut Condition<'a>) {
    if let TableFactor::NestedJoin {
        table_with_joins, ..
    } = &twj.relation
    {
        collect_on(table_with_joins, cond);
    }
    for j in &twj.joins {
        if let TableFactor::NestedJoin {
            table_with_joins, ..
        } = &j.relation
        {
            collect_on(table_with_joins, cond);
        }
        if let Some(JoinConstraint::On(e)) = join_constraint(&j.join_operator) {
            cond.and(e);
        }
    }
}

fn counts(u: &Unit<'_>) -> HardnessCounts {
    let s = u.select;
    let mut from_conds = Condition::default();
    for twj in &s.from {
        collect_on(twj, &mut from_conds);
    }
    let mut where_ = Condition::default();
    if let Some(w) = &s.selection {
        where_.add(w);
    }
    let mut having = Condition::default();
    if let Some(h) = &s.having {
        having.add(h);
    }
    let group_by: Vec<&Expr> = match &s.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().collect(),
        GroupByExpr::All(_) => Vec::new(),
    };
    let n_table_units: usize = s.from.iter().map(table_units).sum();

    // count_component1
    let mut c1 = 0;
    c1 += usize::from(!where_.units.is_empty());
    c1 += usize::from(!group_by.is_empty());
    c1 += usize::from(!u.order_by.is_empty());
    c1 += usize::from(u.limit);
    c1 += n_table_units.saturating_sub(1);
    c1 += from_conds.ors + where_.ors + having.ors;
    c1 += from_conds.likes() + where_.likes() + having.likes();

    // count_component2
    let c2 =
        from_conds.subqueries() + where_.subqueries() + having.subqueries() + usize::from(u.set_op);

    // count_others
    let select_exprs: Vec<Option<&Expr>> = s
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect();
    let mut agg = select_exprs
        .iter()
        .filter(|e| e.is_some_and(|e| count_aggs(e) > 0))
        .count();
    agg += where_.nots();
    agg += group_by.iter().map(|e| count_aggs(e)).sum::<usize>();
    agg += u.order_by.iter().map(|e| count_aggs(e)).sum::<usize>();
    agg += having.connectors + having.nots();
    let mut others = 0;
    others += usize::from(agg > 1);
    others += usize::from(s.projection.len() > 1);
    others += usize::from(where_.units.len() > 1);
    others += usize::from(group_by.len() > 1);

    HardnessCounts {
        component1: c1,
        component2: c2,
        others,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sql: &str) -> Difficulty {
        hardness(sql).unwrap()
    }

    fn c(sql: &str) -> (usize, usize, usize) {
        let k = hardness_counts(sql).unwrap();
        (k.component1, k.component2, k.others)
    }

    #[test]
    fn easy_queries() {
        assert_eq!(h("SELECT count(*) FROM singer"), Difficulty::Easy);
        assert_eq!(
            h("SELECT DISTINCT country FROM singer WHERE age > 20"),
            Difficulty::Easy
        );
        assert_eq!(h("SELECT name FROM singer ORDER BY age;"), Difficulty::Easy);
        assert_eq!(c("SELECT count(*) FROM singer"), (0, 0, 0));
    }

    #[test]
    fn medium_queries() {
        // one component1 (ORDER BY), more than one select column
        let q = "SELECT name, country, age FROM singer ORDER BY age DESC";
        assert_eq!(c(q), (1, 0, 1));
        assert_eq!(h(q), Difficulty::Medium);
        // three aggregates and three columns: others = 2, one WHERE
        let q = "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France'";
        assert_eq!(c(q), (1, 0, 2));
        assert_eq!(h(q), Difficulty::Medium);
        // ORDER BY + LIMIT = 2 components, others = 1
        let q = "SELECT song_name, song_release_year FROM singer ORDER BY age LIMIT 1";
        assert_eq!(c(q), (2, 0, 1));
        assert_eq!(h(q), Difficulty::Medium);
        // a join (two table units) and GROUP BY
        let q = "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 \
                 ON T1.stadium_id = T2.stadium_id GROUP BY T1.stadium_id";
        assert_eq!(c(q), (2, 0, 1));
        assert_eq!(h(q), Difficulty::Medium);
    }

    #[test]
    fn hard_queries() {
        // one subquery in a condition, nothing else
        let q = "SELECT count(*) FROM concert WHERE stadium_id = \
                 (SELECT stadium_id FROM stadium ORDER BY capacity DESC LIMIT 1)";
        assert_eq!(c(q), (1, 1, 0));
        assert_eq!(h(q), Difficulty::Hard);
        // NOT IN with a subquery: the NOT counts as one "aggregate" (Spider's quirk) but one is not > 1
        let q = "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)";
        assert_eq!(c(q), (1, 1, 0));
        assert_eq!(h(q), Difficulty::Hard);
        // INTERSECT
        let q = "SELECT country FROM singer WHERE age > 40 INTERSECT \
                 SELECT country FROM singer WHERE age < 30";
        assert_eq!(c(q), (1, 1, 0));
        assert_eq!(h(q), Difficulty::Hard);
        // EXCEPT whose right side is complex: only the top level counts
        let q =
            "SELECT name FROM stadium EXCEPT SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 \
                 ON T1.stadium_id = T2.stadium_id WHERE T1.year = 2014";
        assert_eq!(c(q), (0, 1, 0));
        assert_eq!(h(q), Difficulty::Hard);
        // join + where + order = 3 components
        let q = "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id \
                 WHERE T1.year = 2014 ORDER BY T2.capacity";
        assert_eq!(c(q), (3, 0, 0));
        assert_eq!(h(q), Difficulty::Hard);
        // LIKE and OR each count: where + or + like = 3; two where conditions
        let q = "SELECT name FROM singer WHERE name LIKE '%a%' OR age = 1";
        assert_eq!(c(q), (3, 0, 1));
        assert_eq!(h(q), Difficulty::Hard);
    }

    #[test]
    fn extra_queries() {
        let q = "SELECT T2.name, T2.capacity FROM concert AS T1 JOIN stadium AS T2 \
                 ON T1.stadium_id = T2.stadium_id WHERE T1.year >= 2014 \
                 GROUP BY T2.stadium_id ORDER BY count(*) DESC LIMIT 1";
        assert_eq!(c(q), (5, 0, 1));
        assert_eq!(h(q), Difficulty::Extra);
        // a subquery plus two where conditions is beyond "hard"
        let q = "SELECT name FROM singer WHERE age > 20 AND singer_id IN (SELECT singer_id FROM singer_in_concert)";
        assert_eq!(c(q), (1, 1, 1));
        assert_eq!(h(q), Difficulty::Extra);
        // two nested queries
        let q = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) \
                 UNION SELECT name FROM singer WHERE age < 10";
        assert_eq!(c(q), (1, 2, 0));
        assert_eq!(h(q), Difficulty::Extra);
    }

    #[test]
    fn having_quirk_counts_connectors_as_aggregates() {
        // HAVING count(*) > 1 alone adds no aggregate (Spider reads not_op)...
        let q = "SELECT country FROM singer GROUP BY country HAVING count(*) > 1";
        assert_eq!(c(q), (1, 0, 0));
        // ...but an AND in HAVING counts one, plus count(*) in select = 2 > 1.
        let q = "SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) > 1 AND avg(age) > 3";
        assert_eq!(c(q), (1, 0, 2));
    }

    #[test]
    fn difficulty_parses_and_prints() {
        for d in Difficulty::ALL {
            assert_eq!(d.to_string().parse::<Difficulty>().unwrap(), d);
        }
        assert!("impossible".parse::<Difficulty>().is_err());
        assert_eq!(
            serde_json::to_string(&Difficulty::Extra).unwrap(),
            "\"extra\""
        );
    }

    #[test]
    fn non_queries_and_garbage_are_errors() {
        assert!(matches!(hardness("SELEC x"), Err(EvalError::Parse { .. })));
        assert!(matches!(
            hardness("DELETE FROM singer"),
            Err(EvalError::Unsupported(_))
        ));
        assert!(hardness("SELECT 1; SELECT 2").is_err());
    }
}
