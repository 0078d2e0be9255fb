//! The fixed word lists of the grammar: keywords, functions (with their arity), collations and
//! type names, and the names a schema brings ([`SchemaIndex`]).

use std::sync::Arc;

use sqlora_sql::schema::Schema;

macro_rules! keywords {
    ($($name:ident = $text:literal,)*) => {
        /// A keyword of the grammar.
        #[allow(clippy::upper_case_acronyms, non_camel_case_types)]
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        #[repr(u8)]
        pub(crate) enum Kw { $($name,)* }

        /// Every keyword with its lowercase spelling, in [`Kw`] order.
        pub(crate) const KEYWORDS: &[(&str, Kw)] = &[$(($text, Kw::$name),)*];
    };
}

keywords! {
    ALL = "all",
    AND = "and",
    AS = "as",
    ASC = "asc",
    BETWEEN = "between",
    BY = "by",
    CASE = "case",
    CAST = "cast",
    COLLATE = "collate",
    CROSS = "cross",
    CURRENT_DATE = "current_date",
    CURRENT_TIME = "current_time",
    CURRENT_TIMESTAMP = "current_timestamp",
    DESC = "desc",
    DISTINCT = "distinct",
    ELSE = "else",
    END = "end",
    EXCEPT = "except",
    EXISTS = "exists",
    FALSE = "false",
    FIRST = "first",
    FROM = "from",
    FULL = "full",
    GLOB = "glob",
    GROUP = "group",
    HAVING = "having",
    IN = "in",
    INNER = "inner",
    INTERSECT = "intersect",
    IS = "is",
    ISNULL = "isnull",
    JOIN = "join",
    LAST = "last",
    LEFT = "left",
    LIKE = "like",
    LIMIT = "limit",
    NOT = "not",
    NOTNULL = "notnull",
    NULL = "null",
    NULLS = "nulls",
    OFFSET = "offset",
    ON = "on",
    OR = "or",
    ORDER = "order",
    OUTER = "outer",
    RECURSIVE = "recursive",
    RIGHT = "right",
    SELECT = "select",
    THEN = "then",
    TRUE = "true",
    UNION = "union",
    USING = "using",
    WHEN = "when",
    WHERE = "where",
    WITH = "with",
}

impl Kw {
    /// The keyword spelled `word` (lowercase).
    pub(crate) fn parse(word: &str) -> Option<Kw> {
        KEYWORDS.iter().find(|(t, _)| *t == word).map(|(_, k)| *k)
    }

    /// This keyword's bit in a keyword mask.
    pub(crate) fn bit(self) -> u64 {
        1u64 << (self as u8)
    }

    /// Keywords that SQLite also accepts as plain names (its "fallback" tokens): a column
    /// named `desc` or `first` is read as a name wherever the keyword is not expected.
    pub(crate) fn usable_as_name(self) -> bool {
        matches!(
            self,
            Kw::ASC
                | Kw::DESC
                | Kw::FIRST
                | Kw::LAST
                | Kw::NULLS
                | Kw::OFFSET
                | Kw::RECURSIVE
                | Kw::LIKE
                | Kw::GLOB
                | Kw::BY
                | Kw::END
                | Kw::WITH
                | Kw::CAST
        )
    }
}

/// Words SQLite reserves that the grammar does not use: never accepted as an unquoted alias.
const RESERVED_ELSEWHERE: &[&str] = &[
    "natural",
    "add",
    "alter",
    "autoincrement",
    "check",
    "commit",
    "constraint",
    "create",
    "default",
    "deferrable",
    "delete",
    "drop",
    "escape",
    "filter",
    "foreign",
    "index",
    "indexed",
    "insert",
    "into",
    "match",
    "over",
    "primary",
    "references",
    "regexp",
    "returning",
    "rollback",
    "set",
    "table",
    "to",
    "transaction",
    "unique",
    "update",
    "values",
    "window",
    "nothing",
    "do",
    "raise",
    "rowid",
    "oid",
    "_rowid_",
    "exclude",
    "groups",
    "range",
    "rows",
    "materialized",
    "generated",
    "without",
];

/// Whether the unquoted lowercase `word` may name something the query defines (an alias, a
/// CTE): not a keyword of the grammar (except SQLite's fallback ones, which are still refused
/// here to keep aliases unambiguous) and not a word SQLite reserves.
pub(crate) fn free_name_ok(word: &str) -> bool {
    Kw::parse(word).is_none() && !RESERVED_ELSEWHERE.contains(&word)
}

/// A function of the grammar: its lowercase name, the number of arguments it takes and whether
/// it is an aggregate.
#[derive(Debug)]
pub(crate) struct Func {
    pub name: &'static str,
    pub min: u8,
    pub max: u8,
    pub aggregate: bool,
}

const MANY: u8 = u8::MAX;

const fn f(name: &'static str, min: u8, max: u8) -> Func {
    Func {
        name,
        min,
        max,
        aggregate: false,
    }
}

const fn agg(name: &'static str, min: u8, max: u8) -> Func {
    Func {
        name,
        min,
        max,
        aggregate: true,
    }
}

/// The functions a query may call: SQLite's core, date and aggregate functions (the math
/// functions need a build flag, so they are left out; so are window functions, which need
/// `OVER`). `min`/`max` with one argument are aggregates, with more scalar: both are listed as
/// aggregates taking one argument, which is what text-to-SQL queries use.
pub(crate) const FUNCS: &[Func] = &[
    agg("avg", 1, 1),
    agg("count", 0, 1),
    agg("group_concat", 1, 2),
    agg("max", 1, 1),
    agg("min", 1, 1),
    agg("sum", 1, 1),
    agg("total", 1, 1),
    f("abs", 1, 1),
    f("char", 1, MANY),
    f("coalesce", 2, MANY),
    f("date", 0, MANY),
    f("datetime", 0, MANY),
    f("hex", 1, 1),
    f("ifnull", 2, 2),
    f("iif", 3, 3),
    f("instr", 2, 2),
    f("julianday", 0, MANY),
    f("length", 1, 1),
    f("lower", 1, 1),
    f("ltrim", 1, 2),
    f("nullif", 2, 2),
    f("printf", 1, MANY),
    f("quote", 1, 1),
    f("random", 0, 0),
    f("replace", 3, 3),
    f("round", 1, 2),
    f("rtrim", 1, 2),
    f("strftime", 1, MANY),
    f("substr", 2, 3),
    f("substring", 2, 3),
    f("time", 0, MANY),
    f("trim", 1, 2),
    f("typeof", 1, 1),
    f("unicode", 1, 1),
    f("unixepoch", 0, MANY),
    f("upper", 1, 1),
];

/// The function named `name` (lowercase).
pub(crate) fn func(name: &str) -> Option<&'static Func> {
    FUNCS.iter().find(|f| f.name == name)
}

/// The collations every SQLite has.
pub(crate) const COLLATIONS: &[&str] = &["binary", "nocase", "rtrim"];

/// Type names accepted in `CAST(x AS type)`.
pub(crate) const TYPE_NAMES: &[&str] = &[
    "integer", "int", "real", "text", "numeric", "blob", "float", "double", "varchar", "char",
    "date", "datetime", "boolean", "decimal", "bigint",
];

/// The columns of a table in scope: known names, or any name (a CTE or subquery whose output
/// columns could not be followed).
#[derive(Clone, Debug)]
pub(crate) enum Cols {
    Known(Arc<[Arc<str>]>),
    Any,
}

impl Cols {
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Cols::Known(cols) => cols.iter().any(|c| &**c == name),
            Cols::Any => true,
        }
    }

    pub(crate) fn count(&self) -> Option<usize> {
        match self {
            Cols::Known(cols) => Some(cols.len()),
            Cols::Any => None,
        }
    }
}

/// One schema table's names, lowercase.
#[derive(Debug)]
pub(crate) struct TableNames {
    pub name: Arc<str>,
    pub cols: Cols,
}

/// A database schema's table and column names, lowercased once, shared by every
/// [`SqlState`](crate::SqlState) over that database.
#[derive(Debug)]
pub struct SchemaIndex {
    pub(crate) tables: Vec<TableNames>,
    /// Every column name of every table, sorted, without duplicates.
    pub(crate) all_columns: Vec<Arc<str>>,
}

impl SchemaIndex {
    /// The names of `schema`'s tables (views included) and columns.
    pub fn new(schema: &Schema) -> Arc<SchemaIndex> {
        let tables: Vec<TableNames> = schema
            .tables
            .iter()
            .map(|t| TableNames {
                name: t.name.to_ascii_lowercase().into(),
                cols: Cols::Known(
                    t.columns
                        .iter()
                        .map(|c| Arc::from(c.name.to_ascii_lowercase()))
                        .collect(),
                ),
            })
            .collect();
        let mut all_columns: Vec<Arc<str>> = tables
            .iter()
            .flat_map(|t| match &t.cols {
                Cols::Known(c) => c.to_vec(),
                Cols::Any => Vec::new(),
            })
            .collect();
        all_columns.sort();
        all_columns.dedup();
        Arc::new(SchemaIndex {
            tables,
            all_columns,
        })
    }

    pub(crate) fn table(&self, name: &str) -> Option<&TableNames> {
        self.tables.iter().find(|t| &*t.name == name)
    }
}
