//! The token-level half of the recognizer: a pushdown automaton over SQL tokens with the
//! name scopes of every SELECT being parsed.
//!
//! Every state on the stack is a place in the grammar; a token is handed to the top state,
//! which consumes it, or (when it is complete and the token is not its continuation) pops and
//! hands the token to the state below. [`Parser::expect`] answers the question the lexer asks
//! for a word still being typed: which keywords and which kinds of names could come here.

use std::sync::Arc;

use crate::state::is_word_byte;
use crate::words::{free_name_ok, func, Cols, Kw, SchemaIndex, COLLATIONS, FUNCS, TYPE_NAMES};

/// A token of SQL, as the lexer hands it over.
#[derive(Clone, Debug)]
pub(crate) enum Tok {
    Kw(Kw),
    /// A name (lowercase), and whether it was quoted.
    Name(Arc<str>, bool),
    /// A numeric literal; `Some(n)` for a plain non-negative integer.
    Num(Option<u64>),
    Str,
    LParen,
    RParen,
    Comma,
    Dot,
    Semi,
    Star,
    Plus,
    Minus,
    Tilde,
    /// `=`, `==`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `<<`, `>>`.
    Cmp,
    /// `/`, `%`, `||`, `|`, `&`.
    Arith,
    Eof,
}

/// What a word at the current place may be.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expect {
    pub kws: u64,
    /// An unqualified column of the tables in scope.
    pub col: bool,
    /// A column of the table (or alias) named here.
    pub col_of: Option<Arc<str>>,
    /// A column of the current FROM clause's tables (`USING`).
    pub using_col: bool,
    /// A table or alias in scope, as a qualifier.
    pub qual: bool,
    /// A function; `agg`: aggregates too.
    pub func: bool,
    pub agg: bool,
    /// A table of the schema or a CTE.
    pub table: bool,
    /// A new name (alias, CTE name).
    pub free: bool,
    /// The new name would be an alias without `AS` (`FROM t x`, `SELECT a x`): it may not
    /// start with a clause keyword ([`glued_keyword`]).
    pub implicit_alias: bool,
    /// The new name would be an alias (with or without `AS`): no letter may follow a digit in
    /// it ([`letter_after_digit`]).
    pub alias: bool,
    pub collation: bool,
    pub typename: bool,
    /// A result column's name (a compound's ORDER BY).
    pub out_names: bool,
}

/// Clause keywords an alias without `AS` may not start with. A model that wants `GROUP BY`
/// where the grammar refuses it (e.g. the select list reads a column no table of the FROM
/// clause has yet) otherwise slips into an alias glued to the keyword, `FROM t
/// GROUPBYcol…`, and wanders on until its token budget ends; refused here, it has to write
/// what the grammar takes (join the table it needs). Two-letter keywords (`ON`, `OR`) are left
/// out: too many real aliases start with them.
const GLUE_KEYWORDS: [&str; 21] = [
    "where",
    "group",
    "order",
    "having",
    "limit",
    "union",
    "except",
    "intersect",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "outer",
    "using",
    "window",
    "from",
    "select",
    "offset",
];

/// Whether a letter follows a digit in `prefix`: an alias such as `T1INNER` or `T2ONT1`, what
/// a model writes when the alias it meant (`T1`) cannot take the table (the select list read
/// columns under it that this table lacks) and the keyword it wanted next is glued on instead.
/// Aliases of people and models (`T1`, `c`, `oi`, `t_2`) do not have one.
pub(crate) fn letter_after_digit(prefix: &[u8]) -> bool {
    prefix
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && w[1].is_ascii_alphabetic())
}

/// Whether a name starting with `prefix` (lowercase) starts with a [`GLUE_KEYWORDS`] keyword.
pub(crate) fn glued_keyword(prefix: &[u8]) -> bool {
    GLUE_KEYWORDS
        .iter()
        .any(|k| prefix.starts_with(k.as_bytes()))
}

impl Expect {
    /// Whether a new name ([`Expect::free`]) may start with `prefix` (lowercase): always,
    /// except an alias without `AS` written unquoted that starts with a clause keyword.
    pub(crate) fn free_name_prefix_ok(&self, prefix: &[u8], quoted: bool) -> bool {
        self.free
            && (quoted
                || ((!self.implicit_alias || !glued_keyword(prefix))
                    && (!self.alias || !letter_after_digit(prefix))))
    }
    fn kw(&mut self, kws: &[Kw]) {
        for k in kws {
            self.kws |= k.bit();
        }
    }

    fn operand(&mut self, agg: bool) {
        self.kw(&[
            Kw::NOT,
            Kw::CASE,
            Kw::CAST,
            Kw::EXISTS,
            Kw::NULL,
            Kw::TRUE,
            Kw::FALSE,
            Kw::CURRENT_DATE,
            Kw::CURRENT_TIME,
            Kw::CURRENT_TIMESTAMP,
        ]);
        self.col = true;
        self.qual = true;
        self.func = true;
        self.agg |= agg;
    }
}

/// Where a SELECT's names stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The select list, before FROM: names are checked against every table and resolved when
    /// the FROM clause ends.
    SelectList,
    /// Inside the FROM clause (tables so far are known).
    From,
    /// After the FROM clause.
    Closed,
}

/// A reference whose table is not known yet.
#[derive(Clone, Debug)]
struct Ref {
    qual: Option<Arc<str>>,
    /// `None`: `qual.*`.
    col: Option<Arc<str>>,
    /// Read in the select list of the frame that holds it (not in a subquery inside it):
    /// only such a reference may be requalified ([`Options::requalify`]), as
    /// `sqlora_sql::requalify` edits a SELECT's own select list only.
    own: bool,
}

/// One output column of a select list.
#[derive(Clone, Debug)]
enum Out {
    Name(Arc<str>),
    Unnamed,
    Star,
    QualStar(Arc<str>),
}

/// A table in a FROM clause.
#[derive(Clone, Debug)]
struct InScope {
    /// The alias, else the table name; empty for an unaliased subquery.
    name: Arc<str>,
    cols: Cols,
    /// A table of the schema (not a CTE or a subquery): what `sqlora_sql::requalify` can see.
    base: bool,
}

/// The names of one SELECT (one core of a compound).
#[derive(Clone, Debug)]
struct Frame {
    phase: Phase,
    /// Names do not resolve beyond this frame (a FROM subquery's, a CTE body's).
    barrier: bool,
    /// The SELECT aggregates (an aggregate call, GROUP BY).
    aggregate: bool,
    tables: Vec<InScope>,
    aliases: Vec<Arc<str>>,
    deferred: Vec<Ref>,
    outputs: Vec<Out>,
    /// The number of result columns, once the FROM clause is closed (`None`: unknown).
    ncols: Option<usize>,
}

impl Frame {
    fn new() -> Frame {
        Frame {
            phase: Phase::SelectList,
            barrier: false,
            aggregate: false,
            tables: Vec::new(),
            aliases: Vec::new(),
            deferred: Vec::new(),
            outputs: Vec::new(),
            ncols: None,
        }
    }

    /// The table or alias `name`; `None` also when two tables go by that name (ambiguous).
    fn table(&self, name: &str) -> Option<&InScope> {
        let mut found = self.tables.iter().filter(|t| &*t.name == name);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Whether `sqlora_sql::requalify` moves a select-list column `c` read under base table
    /// `t`, which lacks it, to another table of this FROM clause: a base table with `c` that
    /// its name picks out alone.
    fn requalifies(&self, t: &InScope, c: &str) -> bool {
        t.base
            && self.tables.iter().any(|u| {
                u.base && !u.name.is_empty() && u.cols.has(c) && self.table(&u.name).is_some()
            })
    }

    fn has_name(&self, name: &str) -> bool {
        self.tables.iter().any(|t| &*t.name == name)
    }
}

/// A common table expression in scope.
#[derive(Clone, Debug)]
struct Cte {
    name: Arc<str>,
    cols: Cols,
}

/// One statement being parsed (the top one, or a subquery).
#[derive(Clone, Debug)]
struct StmtCtx {
    cte_mark: usize,
    /// `WITH RECURSIVE`: a CTE is in scope inside its own body.
    recursive: bool,
    barrier: bool,
    /// The number of result columns every core must have (a scalar subquery: 1).
    want: Option<usize>,
    /// The output columns of the first core.
    outputs: Option<Cols>,
    cores: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TailPh {
    Compound,
    UnionAll,
    NeedSelect,
    OrderBy,
    OrderTerm,
    OrderDir,
    OrderNulls,
    OrderAfterNulls,
    /// `LIMIT` and `OFFSET` take a number (an expression there may not name columns).
    LimitNum,
    AfterLimit,
    OffsetNum,
    AfterOffset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CorePh {
    SelectStart,
    Item,
    AfterItem { aliased: bool },
    ItemAlias,
    FromItem { join: bool },
    FromSubClose { join: bool },
    AfterTable { aliased: bool, join: bool },
    TableAlias { join: bool },
    JoinLeft { natural: bool },
    JoinNeedJoin { natural: bool },
    UsingOpen,
    UsingName,
    UsingAfter,
    AfterWhere,
    GroupBy,
    GroupList,
    AfterHaving,
}

#[derive(Clone, Debug)]
enum ExPh {
    Operand,
    Word {
        name: Arc<str>,
        func: bool,
        qual: bool,
        col: bool,
    },
    QualDot(Arc<str>),
    After,
    Is,
    IsDistinct,
    Not,
    In,
    Collate,
    StarDone,
}

/// What an ORDER BY / GROUP BY term may be: a positional integer must be a result column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Plain,
    SelectItem,
    Positional,
}

#[derive(Clone, Debug)]
struct Expr {
    ph: ExPh,
    between: bool,
    agg: bool,
    role: Role,
    /// Nothing but one primary so far.
    first: bool,
    /// The expression is one column reference (its name).
    simple: Option<Arc<str>>,
    /// `simple` was written qualified (`t.col`).
    qualified: bool,
    /// Only unary operators so far.
    signed: bool,
    /// An ORDER BY / GROUP BY term: the frame it belongs to, beyond which SQLite resolves no
    /// name inside it (subqueries in it included).
    floor: usize,
    /// A term of a compound's ORDER BY: a result column's number or name, nothing else.
    compound: bool,
    /// The expression is one integer literal.
    int: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CasePh {
    Start,
    AfterBase,
    When,
    Then,
    Else,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubPh {
    /// `(` seen: a subquery, or (in expressions and IN lists) expressions.
    Open,
    /// After the expression list's items.
    List,
    /// After the subquery.
    Close,
    /// `EXISTS` seen, `(` next.
    NeedParen,
}

#[derive(Clone, Debug)]
enum St {
    Top {
        done: bool,
    },
    StmtStart,
    CteName {
        first: bool,
    },
    CteAfterName(Arc<str>),
    CteCols {
        name: Arc<str>,
        cols: Vec<Arc<str>>,
        need: bool,
    },
    CteNeedAs {
        name: Arc<str>,
        cols: Option<Arc<[Arc<str>]>>,
    },
    CteNeedParen {
        name: Arc<str>,
        cols: Option<Arc<[Arc<str>]>>,
    },
    CteBodyClose {
        name: Arc<str>,
        cols: Option<Arc<[Arc<str>]>>,
        /// Registered before its body (WITH RECURSIVE): its index.
        idx: Option<usize>,
    },
    CteNext,
    Tail(TailPh),
    Core(CorePh),
    Expr(Expr),
    /// A parenthesised expression or subquery; `list`: an IN list (several items, empty ok).
    Paren {
        ph: SubPh,
        agg: bool,
        list: bool,
    },
    /// `EXISTS (subquery)`.
    Exists(SubPh),
    Func {
        f: &'static crate::words::Func,
        /// Arguments so far; `None`: just after `(`.
        n: Option<u8>,
        agg: bool,
        distinct: bool,
        star: bool,
    },
    Case(CasePh, bool),
    /// `CAST ( expr AS type )`: 0 `(` next, 1 after the expression, 2 after AS, 3 `)` next.
    Cast(u8, bool),
}

/// The longest alias a select list may use before the FROM clause declares it, unless it is
/// a table's or CTE's name.
pub const FORWARD_ALIAS_MAX: usize = 4;

/// Options of the recognizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Let a select list name columns that no schema table or CTE has, as long as the FROM
    /// clause then provides them (`SELECT avg(n) FROM (SELECT count(*) AS n …)`). Off by
    /// default: the select list is where a model most often invents a column, and with this
    /// on such a column is only refused once the FROM clause cannot provide it.
    pub forward_names: bool,
    /// Let a FROM clause give a base table an alias (or its own name) that the select list
    /// read a column under which that table lacks, when another base table of the same FROM
    /// clause has the column: `SELECT T2.first_name FROM crew_members AS T1 JOIN flight_crew
    /// AS T2`. `sqlora_sql::requalify` then rewrites the qualifier (`T1.first_name`), and the
    /// pipeline applies it to every answer before the guard. On by default: refusing the
    /// alias left the model nowhere to go (it wrote `AS T2_on` and wandered to its token
    /// budget). The statement may not end, nor its FROM clause close, until such a table is
    /// in the FROM clause.
    pub requalify: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            forward_names: false,
            requalify: true,
        }
    }
}

/// The parser state (cheap to clone: the scopes are shared until changed).
#[derive(Clone, Debug)]
pub(crate) struct Parser {
    schema: Arc<SchemaIndex>,
    opts: Options,
    stack: Vec<St>,
    frames: Vec<Arc<Frame>>,
    stmts: Vec<StmtCtx>,
    ctes: Arc<Vec<Cte>>,
    /// The output columns of the statement that ended last (for a CTE or FROM subquery).
    last_outputs: Option<Cols>,
    /// The integer literal the expression that ended last was, if it was one.
    last_int: Option<u64>,
}

/// The result of one state's handling of a token.
enum Step {
    Consumed,
    Redispatch,
    Fail,
}

use Step::{Consumed, Fail, Redispatch};

/// A lookup of an unqualified name.
enum Lookup {
    Found,
    Defer(usize),
    Missing,
}

fn ends_core(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Kw(Kw::ORDER | Kw::LIMIT | Kw::UNION | Kw::INTERSECT | Kw::EXCEPT)
            | Tok::RParen
            | Tok::Semi
            | Tok::Eof
    )
}

fn ends_stmt(tok: &Tok) -> bool {
    matches!(tok, Tok::RParen | Tok::Semi | Tok::Eof)
}

impl Parser {
    pub(crate) fn new(schema: Arc<SchemaIndex>, opts: Options) -> Parser {
        let mut p = Parser {
            schema,
            opts,
            stack: vec![St::Top { done: false }],
            frames: Vec::new(),
            stmts: Vec::new(),
            ctes: Arc::new(Vec::new()),
            last_outputs: None,
            last_int: None,
        };
        p.begin_stmt(None, false);
        p
    }

    // ----- scopes -----

    fn frame(&self) -> &Frame {
        self.frames.last().expect("a frame while in a SELECT")
    }

    fn frame_mut(&mut self) -> &mut Frame {
        Arc::make_mut(self.frames.last_mut().expect("a frame while in a SELECT"))
    }

    /// Starts a statement; `barrier`: it cannot see the names of the statements around it
    /// (a FROM subquery, a CTE body).
    fn begin_stmt(&mut self, want: Option<usize>, barrier: bool) {
        self.stmts.push(StmtCtx {
            cte_mark: self.ctes.len(),
            recursive: false,
            barrier,
            want,
            outputs: None,
            cores: 0,
        });
        self.stack.push(St::StmtStart);
    }

    fn start_core(&mut self) {
        if let Some(ctx) = self.stmts.last_mut() {
            if ctx.cores > 0 {
                self.frames.pop();
            }
            ctx.cores += 1;
        }
        let mut frame = Frame::new();
        frame.barrier = self.stmts.last().is_some_and(|c| c.barrier);
        self.frames.push(Arc::new(frame));
        self.stack.push(St::Tail(TailPh::Compound));
        self.stack.push(St::Core(CorePh::SelectStart));
    }

    /// Ends the current statement (its last frame, its CTEs).
    fn finish_stmt(&mut self) {
        self.frames.pop();
        if let Some(ctx) = self.stmts.pop() {
            if self.ctes.len() > ctx.cte_mark {
                Arc::make_mut(&mut self.ctes).truncate(ctx.cte_mark);
            }
            self.last_outputs = ctx.outputs;
        }
    }

    fn cte(&self, name: &str) -> Option<&Cte> {
        self.ctes.iter().rev().find(|c| &*c.name == name)
    }

    /// Whether `name` is a column of some schema table or CTE in scope (what the select list
    /// may name before its FROM clause).
    fn global_col(&self, name: &str) -> bool {
        self.opts.forward_names
            || self.schema.all_columns.iter().any(|c| &**c == name)
            || self.ctes.iter().any(|c| c.cols.has(name))
    }

    /// Whether some column of the schema or a CTE starting with `prefix` could be read here
    /// (deferred to a select list).
    fn global_col_prefix(&self, prefix: &[u8], quoted: bool) -> bool {
        let ok = |c: &Arc<str>| {
            c.as_bytes().starts_with(prefix)
                && (quoted || c.bytes().all(is_word_byte))
                && !matches!(self.lookup(c), Lookup::Missing)
        };
        self.opts.forward_names
            || self.schema.all_columns.iter().any(ok)
            || self.ctes.iter().any(|c| match &c.cols {
                Cols::Any => true,
                Cols::Known(cols) => cols.iter().any(ok),
            })
    }

    /// The index of the outermost frame whose names the current one sees.
    fn visible(&self) -> usize {
        let barrier = self.frames.iter().rposition(|f| f.barrier).unwrap_or(0);
        let floor = self
            .stack
            .iter()
            .filter_map(|s| match s {
                St::Expr(x) if x.role == Role::Positional => Some(x.floor),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        barrier.max(floor)
    }

    fn any_select_list(&self) -> bool {
        self.frames[self.visible()..]
            .iter()
            .any(|f| f.phase == Phase::SelectList)
    }

    /// An unqualified column `name` from the innermost frame.
    fn lookup(&self, name: &str) -> Lookup {
        let n = self.frames.len();
        let mut defer = None;
        for j in (self.visible()..n).rev() {
            let f = &self.frames[j];
            if f.phase == Phase::SelectList {
                defer.get_or_insert(j);
                continue;
            }
            if f.phase == Phase::From {
                // An ON clause: SQLite resolves its names against the whole FROM clause,
                // tables joined later included, so only qualified names are read there.
                if f.tables.iter().any(|t| t.cols.has(name)) {
                    return Lookup::Missing;
                }
                continue;
            }
            match f.tables.iter().filter(|t| t.cols.has(name)).count() {
                1 => return Lookup::Found,
                0 => {}
                _ => return Lookup::Missing, // ambiguous
            }
            if j + 1 == n && f.phase == Phase::Closed && f.aliases.iter().any(|a| &**a == name) {
                return Lookup::Found;
            }
        }
        match defer {
            Some(j) if self.global_col(name) => Lookup::Defer(j),
            _ => Lookup::Missing,
        }
    }

    /// The table `qual` of the innermost frame that has it, or where to defer it.
    fn lookup_qual(&self, qual: &str) -> (Option<&InScope>, Option<usize>) {
        let mut defer = None;
        for j in (self.visible()..self.frames.len()).rev() {
            let f = &self.frames[j];
            if f.phase == Phase::SelectList {
                defer.get_or_insert(j);
                continue;
            }
            if let Some(t) = f.table(qual) {
                return (Some(t), None);
            }
        }
        (None, defer)
    }

    /// Whether `col` of deferred qualifier `qual` can still be provided by one table along
    /// with the columns already deferred under that qualifier.
    fn deferred_qual_ok(&self, frame: usize, qual: &str, col: Option<&str>) -> bool {
        let f = &self.frames[frame];
        let mut needed: Vec<&str> = f
            .deferred
            .iter()
            .filter(|r| r.qual.as_deref() == Some(qual))
            .filter_map(|r| r.col.as_deref())
            .collect();
        if let Some(c) = col {
            needed.push(c);
        }
        self.candidate_tables()
            .any(|cols| needed.iter().all(|c| cols.has(c)))
    }

    /// The column sets of every table a FROM clause could name.
    fn candidate_tables(&self) -> impl Iterator<Item = &Cols> + '_ {
        self.schema
            .tables
            .iter()
            .map(|t| &t.cols)
            .chain(self.ctes.iter().map(|c| &c.cols))
            .chain(self.opts.forward_names.then_some(&Cols::Any))
    }

    /// Checks (or defers) the column `col` of `qual` (or unqualified) read in the current
    /// frame; false when it cannot be right.
    fn use_col(&mut self, qual: Option<&Arc<str>>, col: Option<&Arc<str>>) -> bool {
        match qual {
            None => {
                let Some(col) = col else { return false };
                match self.lookup(col) {
                    Lookup::Found => true,
                    Lookup::Missing => false,
                    Lookup::Defer(j) => {
                        let own = j + 1 == self.frames.len();
                        Arc::make_mut(&mut self.frames[j]).deferred.push(Ref {
                            qual: None,
                            col: Some(col.clone()),
                            own,
                        });
                        true
                    }
                }
            }
            Some(q) => match self.lookup_qual(q) {
                (Some(t), _) => col.is_none_or(|c| t.cols.has(c)),
                (None, Some(j)) => {
                    if !self.deferred_qual_ok(j, q, col.map(|c| &**c)) {
                        return false;
                    }
                    let own = j + 1 == self.frames.len();
                    Arc::make_mut(&mut self.frames[j]).deferred.push(Ref {
                        qual: Some(q.clone()),
                        col: col.cloned(),
                        own,
                    });
                    true
                }
                (None, None) => false,
            },
        }
    }

    /// Ends the FROM clause of the current frame: resolves its deferred references (passing
    /// those of outer frames outwards) and counts its result columns.
    fn close_from(&mut self) -> bool {
        let n = self.frames.len();
        if self.frame().phase == Phase::Closed {
            return true;
        }
        let refs = std::mem::take(&mut self.frame_mut().deferred);
        self.frame_mut().phase = Phase::Closed;
        for r in refs {
            let mut done = false;
            for j in (self.visible()..n).rev() {
                let f = &self.frames[j];
                if f.phase == Phase::SelectList {
                    // Passed on to an enclosing select list: its qualifier must still have a
                    // table with all the columns read under it there.
                    if let Some(q) = &r.qual {
                        if !self.deferred_qual_ok(j, q, r.col.as_deref()) {
                            return false;
                        }
                    }
                    Arc::make_mut(&mut self.frames[j]).deferred.push(Ref {
                        own: false,
                        ..r.clone()
                    });
                    done = true;
                    break;
                }
                match (&r.qual, &r.col) {
                    (Some(q), col) => {
                        if let Some(t) = f.table(q) {
                            // A column the table lacks is right only when requalification
                            // moves it to another table of this FROM clause.
                            let fits = |c: &Arc<str>| {
                                t.cols.has(c)
                                    || (self.opts.requalify
                                        && r.own
                                        && j + 1 == n
                                        && f.requalifies(t, c))
                            };
                            if col.as_ref().is_some_and(|c| !fits(c)) {
                                return false;
                            }
                            if col.is_none() && j + 1 != n {
                                return false; // `q.*` names a table of its own FROM
                            }
                            done = true;
                            break;
                        }
                    }
                    (None, Some(c)) => match f.tables.iter().filter(|t| t.cols.has(c)).count() {
                        0 => {}
                        1 => {
                            done = true;
                            break;
                        }
                        _ => return false,
                    },
                    (None, None) => return false,
                }
            }
            if !done {
                return false;
            }
        }
        // Result columns.
        let f = self.frame();
        let mut count = Some(0usize);
        for o in &f.outputs {
            let k = match o {
                Out::Name(_) | Out::Unnamed => Some(1),
                Out::Star => {
                    if f.tables.is_empty() {
                        return false; // `SELECT *` without FROM
                    }
                    let dup = f.tables.iter().enumerate().any(|(i, t)| {
                        !t.name.is_empty() && f.tables[..i].iter().any(|u| u.name == t.name)
                    });
                    if dup {
                        return false; // SQLite: ambiguous column name
                    }
                    f.tables
                        .iter()
                        .map(|t| t.cols.count())
                        .try_fold(0, |a, c| c.map(|c| a + c))
                }
                Out::QualStar(q) => f.table(q).and_then(|t| t.cols.count()),
            };
            count = match (count, k) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        self.frame_mut().ncols = count;
        true
    }

    /// The output columns of the current frame (for a CTE or subquery built on it).
    fn frame_outputs(&self) -> Cols {
        let f = self.frame();
        let mut out: Vec<Arc<str>> = Vec::new();
        for o in &f.outputs {
            match o {
                Out::Name(n) => out.push(n.clone()),
                Out::Unnamed => {}
                Out::Star => {
                    for t in &f.tables {
                        match &t.cols {
                            Cols::Known(c) => out.extend(c.iter().cloned()),
                            Cols::Any => return Cols::Any,
                        }
                    }
                }
                Out::QualStar(q) => match f.table(q).map(|t| &t.cols) {
                    Some(Cols::Known(c)) => out.extend(c.iter().cloned()),
                    _ => return Cols::Any,
                },
            }
        }
        Cols::Known(out.into())
    }

    /// Ends the current core: its FROM clause, its column count against the statement's.
    fn end_core(&mut self) -> bool {
        if !self.close_from() {
            return false;
        }
        let ncols = self.frame().ncols;
        let outputs = self.frame_outputs();
        let Some(ctx) = self.stmts.last_mut() else {
            return false;
        };
        match (ctx.want, ncols) {
            (Some(w), Some(n)) if w != n => return false,
            (None, Some(n)) => ctx.want = Some(n),
            _ => {}
        }
        if ctx.outputs.is_none() {
            ctx.outputs = Some(outputs);
        }
        true
    }

    /// Whether the current core could end here (its FROM clause closes, its columns count).
    fn can_end_core(&self) -> bool {
        let mut p = self.clone();
        p.end_core()
    }

    // ----- expectations -----

    /// What a word could be here (the union over the states a word may reach by popping).
    pub(crate) fn expect(&self) -> Expect {
        let mut e = Expect::default();
        for st in self.stack.iter().rev() {
            if !self.expect_state(st, &mut e) {
                break;
            }
        }
        e
    }

    /// Adds what `st` accepts as a word to `e`; true when `st` may end and let a word through
    /// to the state below.
    fn expect_state(&self, st: &St, e: &mut Expect) -> bool {
        match st {
            St::Top { .. } => false,
            St::StmtStart => {
                e.kw(&[Kw::WITH, Kw::SELECT]);
                false
            }
            St::CteName { first } => {
                if *first {
                    e.kw(&[Kw::RECURSIVE]);
                }
                e.free = true;
                false
            }
            St::CteAfterName(_) | St::CteNeedAs { .. } => {
                e.kw(&[Kw::AS]);
                false
            }
            St::CteCols { need, .. } => {
                e.free |= *need;
                false
            }
            St::CteNeedParen { .. } | St::CteBodyClose { .. } => false,
            St::CteNext => {
                e.kw(&[Kw::SELECT]);
                false
            }
            St::Tail(ph) => {
                match ph {
                    TailPh::Compound => {
                        e.kw(&[Kw::UNION, Kw::INTERSECT, Kw::EXCEPT, Kw::ORDER, Kw::LIMIT])
                    }
                    TailPh::UnionAll => e.kw(&[Kw::ALL, Kw::SELECT]),
                    TailPh::NeedSelect => e.kw(&[Kw::SELECT]),
                    TailPh::OrderBy => e.kw(&[Kw::BY]),
                    TailPh::OrderTerm => e.kw(&[Kw::ASC, Kw::DESC, Kw::NULLS, Kw::LIMIT]),
                    TailPh::OrderDir => e.kw(&[Kw::NULLS, Kw::LIMIT]),
                    TailPh::OrderNulls => e.kw(&[Kw::FIRST, Kw::LAST]),
                    TailPh::OrderAfterNulls => e.kw(&[Kw::LIMIT]),
                    TailPh::AfterLimit => e.kw(&[Kw::OFFSET]),
                    TailPh::AfterOffset | TailPh::LimitNum | TailPh::OffsetNum => {}
                }
                false
            }
            St::Core(ph) => match ph {
                CorePh::SelectStart => {
                    e.kw(&[Kw::DISTINCT, Kw::ALL]);
                    e.operand(true);
                    false
                }
                CorePh::Item => {
                    e.operand(true);
                    false
                }
                CorePh::AfterItem { aliased } => {
                    if !aliased {
                        e.kw(&[Kw::AS]);
                        e.free = true;
                        e.implicit_alias = true;
                        e.alias = true;
                    }
                    e.kw(&[Kw::FROM]);
                    if self.can_end_core() {
                        e.kw(&[Kw::WHERE, Kw::GROUP]);
                        true
                    } else {
                        false
                    }
                }
                CorePh::ItemAlias | CorePh::TableAlias { .. } => {
                    e.free = true;
                    e.alias = true;
                    false
                }
                CorePh::FromItem { .. } => {
                    e.table = true;
                    false
                }
                CorePh::FromSubClose { .. } | CorePh::UsingOpen | CorePh::UsingAfter => false,
                CorePh::AfterTable { aliased, join } => {
                    if !aliased {
                        e.kw(&[Kw::AS]);
                        e.free = true;
                        e.implicit_alias = true;
                        e.alias = true;
                    }
                    if *join {
                        e.kw(&[Kw::ON]);
                        if self.using_possible() {
                            e.kw(&[Kw::USING]);
                        }
                    }
                    e.kw(&[
                        Kw::JOIN,
                        Kw::LEFT,
                        Kw::RIGHT,
                        Kw::FULL,
                        Kw::INNER,
                        Kw::CROSS,
                    ]);
                    if self.can_end_core() {
                        e.kw(&[Kw::WHERE, Kw::GROUP]);
                        true
                    } else {
                        false
                    }
                }
                CorePh::JoinLeft { .. } => {
                    e.kw(&[Kw::OUTER, Kw::JOIN]);
                    false
                }
                CorePh::JoinNeedJoin { .. } => {
                    e.kw(&[Kw::JOIN]);
                    false
                }
                CorePh::UsingName => {
                    e.using_col = true;
                    false
                }
                CorePh::AfterWhere => {
                    e.kw(&[Kw::GROUP]);
                    true
                }
                CorePh::GroupBy => {
                    e.kw(&[Kw::BY]);
                    false
                }
                CorePh::GroupList => {
                    e.kw(&[Kw::HAVING]);
                    true
                }
                CorePh::AfterHaving => true,
            },
            St::Expr(x) if x.compound => match &x.ph {
                ExPh::Operand => {
                    e.out_names = true;
                    false
                }
                _ => self.term_ok(x),
            },
            St::Expr(x) => match &x.ph {
                ExPh::Operand => {
                    e.operand(x.agg);
                    false
                }
                ExPh::Word { col, .. } => *col && self.expect_after(x, e),
                ExPh::QualDot(q) => {
                    e.col_of = Some(q.clone());
                    false
                }
                ExPh::After => self.expect_after(x, e),
                ExPh::Is => {
                    e.kw(&[Kw::NOT, Kw::DISTINCT]);
                    e.operand(x.agg);
                    false
                }
                ExPh::IsDistinct => {
                    e.kw(&[Kw::FROM]);
                    false
                }
                ExPh::Not => {
                    e.kw(&[Kw::IN, Kw::LIKE, Kw::GLOB, Kw::BETWEEN, Kw::NULL]);
                    false
                }
                ExPh::In => false,
                ExPh::Collate => {
                    e.collation = true;
                    false
                }
                ExPh::StarDone => true,
            },
            St::Paren { ph, agg, .. } => {
                if *ph == SubPh::Open {
                    e.kw(&[Kw::SELECT, Kw::WITH]);
                    e.operand(*agg);
                }
                false
            }
            St::Exists(ph) => {
                if *ph == SubPh::Open {
                    e.kw(&[Kw::SELECT, Kw::WITH]);
                }
                false
            }
            St::Func { f, n, agg, .. } => {
                if n.is_none() {
                    if f.aggregate {
                        e.kw(&[Kw::DISTINCT]);
                    }
                    if f.max > 0 {
                        e.operand(*agg && !f.aggregate);
                    }
                }
                false
            }
            St::Case(ph, agg) => {
                match ph {
                    CasePh::Start => {
                        e.kw(&[Kw::WHEN]);
                        e.operand(*agg);
                    }
                    CasePh::AfterBase => e.kw(&[Kw::WHEN]),
                    CasePh::When => e.kw(&[Kw::THEN]),
                    CasePh::Then => e.kw(&[Kw::WHEN, Kw::ELSE, Kw::END]),
                    CasePh::Else => e.kw(&[Kw::END]),
                }
                false
            }
            St::Cast(ph, _) => {
                match ph {
                    1 => e.kw(&[Kw::AS]),
                    2 => e.typename = true,
                    _ => {}
                }
                false
            }
        }
    }

    fn expect_after(&self, x: &Expr, e: &mut Expect) -> bool {
        if x.between {
            e.kw(&[Kw::AND]);
            return false;
        }
        let ok = self.term_ok(x);
        if !self.in_positional_term() {
            e.kw(&[Kw::AND]);
        }
        e.kw(&[
            Kw::OR,
            Kw::IS,
            Kw::NOT,
            Kw::IN,
            Kw::LIKE,
            Kw::GLOB,
            Kw::BETWEEN,
            Kw::ISNULL,
            Kw::NOTNULL,
            Kw::COLLATE,
        ]);
        ok
    }

    /// Whether some name allowed by `e` starts with `prefix` (lowercase); `quoted`: the name
    /// is being written between quotes (no keyword, no function).
    pub(crate) fn name_prefix_ok(&self, e: &Expect, prefix: &[u8], quoted: bool) -> bool {
        if e.free_name_prefix_ok(prefix, quoted) {
            return true;
        }
        // Unquoted, only a name of word bytes can be written out (`order items` or `Last"Name`
        // need quotes).
        let starts =
            |n: &str| n.as_bytes().starts_with(prefix) && (quoted || n.bytes().all(is_word_byte));
        if !quoted {
            if e.func
                && FUNCS
                    .iter()
                    .any(|f| (e.agg || !f.aggregate) && starts(f.name))
            {
                return true;
            }
            if e.collation && COLLATIONS.iter().any(|c| starts(c)) {
                return true;
            }
            if e.typename && TYPE_NAMES.iter().any(|c| starts(c)) {
                return true;
            }
        }
        if e.table
            && (self
                .schema
                .tables
                .iter()
                .any(|t| starts(&t.name) && self.joinable(&t.cols))
                || self
                    .ctes
                    .iter()
                    .any(|c| starts(&c.name) && self.joinable(&c.cols)))
        {
            return true;
        }
        if e.qual {
            if self.any_select_list() && self.forward_qual_ok(prefix, quoted) {
                return true;
            }
            if self.frames[self.visible()..].iter().any(|f| {
                f.tables.iter().any(|t| {
                    !t.name.is_empty() && starts(&t.name) && self.lookup_qual(&t.name).0.is_some()
                })
            }) {
                return true;
            }
        }
        if e.col {
            if self.any_select_list() && self.global_col_prefix(prefix, quoted) {
                return true;
            }
            let n = self.frames.len();
            for (j, f) in self.frames.iter().enumerate().skip(self.visible()) {
                if f.phase != Phase::Closed {
                    continue;
                }
                for t in &f.tables {
                    match &t.cols {
                        Cols::Any => return true,
                        Cols::Known(cols) => {
                            for c in cols.iter() {
                                if starts(c) && !matches!(self.lookup(c), Lookup::Missing) {
                                    return true;
                                }
                            }
                        }
                    }
                }
                if j + 1 == n
                    && f.phase == Phase::Closed
                    && f.aliases
                        .iter()
                        .any(|a| starts(a) && !matches!(self.lookup(a), Lookup::Missing))
                {
                    return true;
                }
            }
        }
        if let Some(q) = &e.col_of {
            match self.lookup_qual(q) {
                (Some(t), _) => match &t.cols {
                    Cols::Any => return true,
                    Cols::Known(cols) => {
                        if cols.iter().any(|c| starts(c)) {
                            return true;
                        }
                    }
                },
                (None, Some(j)) => {
                    let f = &self.frames[j];
                    let needed: Vec<&str> = f
                        .deferred
                        .iter()
                        .filter(|r| r.qual.as_deref() == Some(&**q))
                        .filter_map(|r| r.col.as_deref())
                        .collect();
                    for cols in self.candidate_tables() {
                        if !needed.iter().all(|c| cols.has(c)) {
                            continue;
                        }
                        match cols {
                            Cols::Any => return true,
                            Cols::Known(cs) => {
                                if cs.iter().any(|c| starts(c)) {
                                    return true;
                                }
                            }
                        }
                    }
                }
                (None, None) => {}
            }
        }
        if e.out_names {
            match self.out_names() {
                None => return true,
                Some(cols) => {
                    if cols.iter().any(|c| starts(c)) {
                        return true;
                    }
                }
            }
        }
        if e.using_col {
            if let Some((last, left)) = self.frames.last().and_then(|f| f.tables.split_last()) {
                let ok = match &last.cols {
                    Cols::Any => left.iter().any(|t| match &t.cols {
                        Cols::Any => true,
                        Cols::Known(c) => c.iter().any(|c| starts(c)),
                    }),
                    Cols::Known(cols) => cols
                        .iter()
                        .any(|c| starts(c) && left.iter().filter(|t| t.cols.has(c)).count() == 1),
                };
                if ok {
                    return true;
                }
            }
        }
        false
    }

    // ----- feeding tokens -----

    /// Hands `tok` to the automaton; false when it cannot come here.
    pub(crate) fn feed(&mut self, tok: &Tok) -> bool {
        loop {
            let Some(st) = self.stack.pop() else {
                return false;
            };
            match self.step(st, tok) {
                Consumed => return true,
                Redispatch => continue,
                Fail => return false,
            }
        }
    }

    fn push_expr(&mut self, agg: bool, role: Role) {
        self.stack.push(St::Expr(Expr {
            ph: ExPh::Operand,
            between: false,
            agg,
            role,
            first: true,
            simple: None,
            qualified: false,
            signed: false,
            floor: self.frames.len().saturating_sub(1),
            compound: false,
            int: None,
        }));
    }

    /// Whether the innermost expression is (inside) an ORDER BY or GROUP BY term, where SQLite
    /// folds `0 AND x` into the integer 0, a position: AND is not read there.
    fn in_positional_term(&self) -> bool {
        for st in self.stack.iter().rev() {
            match st {
                St::Expr(x) if x.role == Role::Positional => return true,
                St::Core(_) | St::Tail(_) => return false,
                _ => {}
            }
        }
        false
    }

    /// Pushes an ORDER BY term.
    fn push_order_term(&mut self) {
        let compound = self.stmts.last().is_some_and(|c| c.cores > 1);
        // Aggregates in ORDER BY only where the SELECT aggregates already.
        let agg = self.frames.last().is_some_and(|f| f.aggregate);
        self.push_expr(agg, Role::Positional);
        if let Some(St::Expr(x)) = self.stack.last_mut() {
            x.compound = compound;
        }
    }

    /// The names of the current statement's result columns (`None`: any).
    fn out_names(&self) -> Option<&[Arc<str>]> {
        match self.stmts.last().and_then(|c| c.outputs.as_ref()) {
            Some(Cols::Known(c)) => Some(c),
            _ => None,
        }
    }

    /// Whether the complete expression `x` may end here (positional terms in range; a
    /// compound's ORDER BY names a result column).
    fn term_ok(&self, x: &Expr) -> bool {
        if x.role != Role::Positional {
            return true;
        }
        if x.compound && x.int.is_none() {
            let named = match (&x.simple, self.out_names()) {
                (Some(n), Some(cols)) => !x.qualified && cols.iter().any(|c| c == n),
                (Some(_), None) => !x.qualified,
                _ => false,
            };
            if !named {
                return false;
            }
        }
        if let Some(k) = x.int {
            let ncols = self
                .stmts
                .last()
                .and_then(|c| c.want)
                .or_else(|| self.frames.last().and_then(|f| f.ncols));
            return match ncols {
                Some(n) => k >= 1 && (k as usize) <= n,
                None => k >= 1,
            };
        }
        true
    }

    fn step(&mut self, st: St, tok: &Tok) -> Step {
        match st {
            St::Top { done } => match tok {
                Tok::Semi if !done => {
                    self.stack.push(St::Top { done: true });
                    Consumed
                }
                Tok::Eof => {
                    self.stack.push(St::Top { done: true });
                    Consumed
                }
                _ => Fail,
            },
            St::StmtStart => match tok {
                Tok::Kw(Kw::WITH) => {
                    self.stack.push(St::CteName { first: true });
                    Consumed
                }
                Tok::Kw(Kw::SELECT) => {
                    self.start_core();
                    Consumed
                }
                _ => Fail,
            },
            St::CteName { first } => match tok {
                Tok::Kw(Kw::RECURSIVE) if first => {
                    if let Some(ctx) = self.stmts.last_mut() {
                        ctx.recursive = true;
                    }
                    self.stack.push(St::CteName { first: false });
                    Consumed
                }
                Tok::Name(n, q) if *q || free_name_ok(n) => {
                    self.stack.push(St::CteAfterName(n.clone()));
                    Consumed
                }
                _ => Fail,
            },
            St::CteAfterName(name) => match tok {
                Tok::LParen => {
                    self.stack.push(St::CteCols {
                        name,
                        cols: Vec::new(),
                        need: true,
                    });
                    Consumed
                }
                Tok::Kw(Kw::AS) => {
                    self.stack.push(St::CteNeedParen { name, cols: None });
                    Consumed
                }
                _ => Fail,
            },
            St::CteCols {
                name,
                mut cols,
                need,
            } => match tok {
                Tok::Name(n, q) if need && (*q || free_name_ok(n)) => {
                    cols.push(n.clone());
                    self.stack.push(St::CteCols {
                        name,
                        cols,
                        need: false,
                    });
                    Consumed
                }
                Tok::Comma if !need => {
                    self.stack.push(St::CteCols {
                        name,
                        cols,
                        need: true,
                    });
                    Consumed
                }
                Tok::RParen if !need => {
                    self.stack.push(St::CteNeedAs {
                        name,
                        cols: Some(cols.into()),
                    });
                    Consumed
                }
                _ => Fail,
            },
            St::CteNeedAs { name, cols } => match tok {
                Tok::Kw(Kw::AS) => {
                    self.stack.push(St::CteNeedParen { name, cols });
                    Consumed
                }
                _ => Fail,
            },
            St::CteNeedParen { name, cols } => match tok {
                Tok::LParen => {
                    let want = cols.as_ref().map(|c| c.len());
                    let idx = if self.stmts.last().is_some_and(|c| c.recursive) {
                        Arc::make_mut(&mut self.ctes).push(Cte {
                            name: name.clone(),
                            cols: cols.clone().map_or(Cols::Any, Cols::Known),
                        });
                        Some(self.ctes.len() - 1)
                    } else {
                        None
                    };
                    self.stack.push(St::CteBodyClose { name, cols, idx });
                    self.begin_stmt(want, true);
                    Consumed
                }
                _ => Fail,
            },
            St::CteBodyClose { name, cols, idx } => match tok {
                Tok::RParen => {
                    let out = self.last_outputs.take();
                    let cols = match cols {
                        Some(c) => Cols::Known(c),
                        None => out.unwrap_or(Cols::Any),
                    };
                    let ctes = Arc::make_mut(&mut self.ctes);
                    match idx.and_then(|i| ctes.get_mut(i)) {
                        Some(c) => c.cols = cols,
                        None => ctes.push(Cte { name, cols }),
                    }
                    self.stack.push(St::CteNext);
                    Consumed
                }
                _ => Fail,
            },
            St::CteNext => match tok {
                Tok::Comma => {
                    self.stack.push(St::CteName { first: false });
                    Consumed
                }
                Tok::Kw(Kw::SELECT) => {
                    self.start_core();
                    Consumed
                }
                _ => Fail,
            },
            St::Tail(ph) => self.step_tail(ph, tok),
            St::Core(ph) => self.step_core(ph, tok),
            St::Expr(x) => self.step_expr(x, tok),
            St::Paren { ph, agg, list } => match ph {
                SubPh::Open => match tok {
                    Tok::Kw(Kw::SELECT | Kw::WITH) => {
                        self.stack.push(St::Paren {
                            ph: SubPh::Close,
                            agg,
                            list,
                        });
                        self.begin_stmt(Some(1), false);
                        Redispatch
                    }
                    Tok::RParen if list => Consumed,
                    _ => {
                        self.stack.push(St::Paren {
                            ph: SubPh::List,
                            agg,
                            list,
                        });
                        self.push_expr(agg, Role::Plain);
                        Redispatch
                    }
                },
                SubPh::List => match tok {
                    Tok::Comma if list => {
                        self.stack.push(St::Paren { ph, agg, list });
                        self.push_expr(agg, Role::Plain);
                        Consumed
                    }
                    Tok::RParen => {
                        // SQLite reads `(1)` as the integer 1 (a positional term).
                        let int = self.last_int;
                        if let Some(St::Expr(p)) = self.stack.last_mut() {
                            if p.first && !list && p.role == Role::Positional {
                                p.int = int;
                            }
                        }
                        Consumed
                    }
                    _ => Fail,
                },
                SubPh::Close => match tok {
                    Tok::RParen => Consumed,
                    _ => Fail,
                },
                SubPh::NeedParen => Fail,
            },
            St::Exists(ph) => match (ph, tok) {
                (SubPh::NeedParen, Tok::LParen) => {
                    self.stack.push(St::Exists(SubPh::Open));
                    Consumed
                }
                (SubPh::Open, Tok::Kw(Kw::SELECT | Kw::WITH)) => {
                    self.stack.push(St::Exists(SubPh::Close));
                    self.begin_stmt(None, false);
                    Redispatch
                }
                (SubPh::Close, Tok::RParen) => Consumed,
                _ => Fail,
            },
            St::Func {
                f,
                n,
                agg,
                distinct,
                star,
            } => {
                let inner_agg = agg && !f.aggregate;
                match (n, tok) {
                    (None, Tok::Kw(Kw::DISTINCT)) if f.aggregate && !distinct => {
                        self.stack.push(St::Func {
                            f,
                            n: Some(1),
                            agg,
                            distinct: true,
                            star,
                        });
                        self.push_expr(inner_agg, Role::Plain);
                        Consumed
                    }
                    (None, Tok::Star) if f.name == "count" => {
                        self.stack.push(St::Func {
                            f,
                            n: Some(0),
                            agg,
                            distinct,
                            star: true,
                        });
                        Consumed
                    }
                    (None, Tok::RParen) => {
                        if f.min == 0 && f.name != "count" {
                            Consumed
                        } else {
                            Fail
                        }
                    }
                    (None, _) if f.max > 0 => {
                        self.stack.push(St::Func {
                            f,
                            n: Some(1),
                            agg,
                            distinct,
                            star,
                        });
                        self.push_expr(inner_agg, Role::Plain);
                        Redispatch
                    }
                    (Some(k), Tok::Comma) if !star && !distinct && k < f.max => {
                        self.stack.push(St::Func {
                            f,
                            n: Some(k + 1),
                            agg,
                            distinct,
                            star,
                        });
                        self.push_expr(inner_agg, Role::Plain);
                        Consumed
                    }
                    (Some(k), Tok::RParen) if star || k >= f.min => Consumed,
                    _ => Fail,
                }
            }
            St::Case(ph, agg) => {
                let next = match (ph, tok) {
                    (CasePh::Start, Tok::Kw(Kw::WHEN)) => CasePh::When,
                    (CasePh::Start, _) => {
                        self.stack.push(St::Case(CasePh::AfterBase, agg));
                        self.push_expr(agg, Role::Plain);
                        return Redispatch;
                    }
                    (CasePh::AfterBase | CasePh::Then, Tok::Kw(Kw::WHEN)) => CasePh::When,
                    (CasePh::When, Tok::Kw(Kw::THEN)) => CasePh::Then,
                    (CasePh::Then, Tok::Kw(Kw::ELSE)) => CasePh::Else,
                    (CasePh::Then | CasePh::Else, Tok::Kw(Kw::END)) => return Consumed,
                    _ => return Fail,
                };
                self.stack.push(St::Case(next, agg));
                self.push_expr(agg, Role::Plain);
                Consumed
            }
            St::Cast(ph, agg) => match (ph, tok) {
                (0, Tok::LParen) => {
                    self.stack.push(St::Cast(1, agg));
                    self.push_expr(agg, Role::Plain);
                    Consumed
                }
                (1, Tok::Kw(Kw::AS)) => {
                    self.stack.push(St::Cast(2, agg));
                    Consumed
                }
                (2, Tok::Name(n, false)) if TYPE_NAMES.contains(&&**n) => {
                    self.stack.push(St::Cast(3, agg));
                    Consumed
                }
                (3, Tok::RParen) => Consumed,
                _ => Fail,
            },
        }
    }

    fn step_tail(&mut self, ph: TailPh, tok: &Tok) -> Step {
        let next = match (ph, tok) {
            (TailPh::Compound, Tok::Kw(Kw::UNION)) => TailPh::UnionAll,
            (TailPh::Compound, Tok::Kw(Kw::INTERSECT | Kw::EXCEPT))
            | (TailPh::UnionAll, Tok::Kw(Kw::ALL)) => TailPh::NeedSelect,
            (TailPh::UnionAll | TailPh::NeedSelect, Tok::Kw(Kw::SELECT)) => {
                self.start_core();
                return Consumed;
            }
            (TailPh::Compound, Tok::Kw(Kw::ORDER)) => TailPh::OrderBy,
            (TailPh::OrderBy, Tok::Kw(Kw::BY)) => {
                self.stack.push(St::Tail(TailPh::OrderTerm));
                self.push_order_term();
                return Consumed;
            }
            (TailPh::OrderTerm, Tok::Kw(Kw::ASC | Kw::DESC)) => TailPh::OrderDir,
            (TailPh::OrderTerm | TailPh::OrderDir, Tok::Kw(Kw::NULLS)) => TailPh::OrderNulls,
            (TailPh::OrderNulls, Tok::Kw(Kw::FIRST | Kw::LAST)) => TailPh::OrderAfterNulls,
            (TailPh::OrderTerm | TailPh::OrderDir | TailPh::OrderAfterNulls, Tok::Comma) => {
                self.stack.push(St::Tail(TailPh::OrderTerm));
                self.push_order_term();
                return Consumed;
            }
            (
                TailPh::Compound | TailPh::OrderTerm | TailPh::OrderDir | TailPh::OrderAfterNulls,
                Tok::Kw(Kw::LIMIT),
            ) => TailPh::LimitNum,
            (TailPh::LimitNum, Tok::Num(_)) => TailPh::AfterLimit,
            (TailPh::AfterLimit, Tok::Kw(Kw::OFFSET) | Tok::Comma) => TailPh::OffsetNum,
            (TailPh::OffsetNum, Tok::Num(_)) => TailPh::AfterOffset,
            (
                TailPh::Compound
                | TailPh::OrderTerm
                | TailPh::OrderDir
                | TailPh::OrderAfterNulls
                | TailPh::AfterLimit
                | TailPh::AfterOffset,
                t,
            ) if ends_stmt(t) => {
                self.finish_stmt();
                return Redispatch;
            }
            _ => return Fail,
        };
        self.stack.push(St::Tail(next));
        Consumed
    }

    fn step_core(&mut self, ph: CorePh, tok: &Tok) -> Step {
        let to = |s: &mut Parser, ph: CorePh| {
            s.stack.push(St::Core(ph));
            Consumed
        };
        match ph {
            CorePh::SelectStart | CorePh::Item => match tok {
                Tok::Kw(Kw::DISTINCT | Kw::ALL) if ph == CorePh::SelectStart => {
                    to(self, CorePh::Item)
                }
                Tok::Star => {
                    self.frame_mut().outputs.push(Out::Star);
                    to(self, CorePh::AfterItem { aliased: true })
                }
                _ => {
                    self.stack
                        .push(St::Core(CorePh::AfterItem { aliased: false }));
                    self.push_expr(true, Role::SelectItem);
                    Redispatch
                }
            },
            CorePh::AfterItem { aliased } => match tok {
                Tok::Kw(Kw::AS) if !aliased => to(self, CorePh::ItemAlias),
                Tok::Name(n, q) if !aliased && (*q || free_name_ok(n)) => {
                    self.alias_item(n);
                    to(self, CorePh::AfterItem { aliased: true })
                }
                Tok::Comma => to(self, CorePh::Item),
                Tok::Kw(Kw::FROM) => {
                    self.frame_mut().phase = Phase::From;
                    to(self, CorePh::FromItem { join: false })
                }
                _ => self.core_clause(tok),
            },
            CorePh::ItemAlias => match tok {
                Tok::Name(n, q) if *q || free_name_ok(n) => {
                    self.alias_item(n);
                    to(self, CorePh::AfterItem { aliased: true })
                }
                _ => Fail,
            },
            CorePh::FromItem { join } => match tok {
                Tok::Name(n, _) => {
                    let (cols, base) = match self.cte(n) {
                        Some(c) => (c.cols.clone(), false),
                        None => match self.schema.table(n) {
                            Some(t) => (t.cols.clone(), true),
                            None => return Fail,
                        },
                    };
                    if !self.add_table(n.clone(), cols, base) {
                        return Fail;
                    }
                    to(
                        self,
                        CorePh::AfterTable {
                            aliased: false,
                            join,
                        },
                    )
                }
                Tok::LParen => {
                    self.stack.push(St::Core(CorePh::FromSubClose { join }));
                    self.begin_stmt(None, true);
                    Consumed
                }
                _ => Fail,
            },
            CorePh::FromSubClose { join } => match tok {
                Tok::RParen => {
                    let cols = self.last_outputs.take().unwrap_or(Cols::Any);
                    if !self.add_table(Arc::from(""), cols, false) {
                        return Fail;
                    }
                    to(
                        self,
                        CorePh::AfterTable {
                            aliased: false,
                            join,
                        },
                    )
                }
                _ => Fail,
            },
            CorePh::AfterTable { aliased: false, .. }
                if !matches!(tok, Tok::Kw(Kw::AS) | Tok::Name(..))
                    && !self
                        .frame()
                        .tables
                        .last()
                        .is_some_and(|t| self.binds(&t.name, t)) =>
            {
                // The table keeps its own name, and the select list read a column it lacks
                // under that name.
                Fail
            }
            CorePh::AfterTable { aliased, join } => match tok {
                Tok::Kw(Kw::AS) if !aliased => to(self, CorePh::TableAlias { join }),
                Tok::Name(n, q) if !aliased && (*q || free_name_ok(n)) => {
                    if !self.alias_table(n) {
                        return Fail;
                    }
                    to(
                        self,
                        CorePh::AfterTable {
                            aliased: true,
                            join,
                        },
                    )
                }
                Tok::Kw(Kw::ON) if join => {
                    self.stack.push(St::Core(CorePh::AfterTable {
                        aliased: true,
                        join: false,
                    }));
                    self.push_expr(false, Role::Plain);
                    Consumed
                }
                Tok::Kw(Kw::USING) if join && self.using_possible() => to(self, CorePh::UsingOpen),
                Tok::Comma => to(self, CorePh::FromItem { join: false }),
                Tok::Kw(Kw::JOIN) => to(self, CorePh::FromItem { join: true }),
                Tok::Kw(Kw::LEFT | Kw::RIGHT | Kw::FULL) => {
                    to(self, CorePh::JoinLeft { natural: false })
                }
                Tok::Kw(Kw::INNER | Kw::CROSS) => to(self, CorePh::JoinNeedJoin { natural: false }),
                _ => self.core_clause(tok),
            },
            CorePh::TableAlias { join } => match tok {
                Tok::Name(n, q) if *q || free_name_ok(n) => {
                    if !self.alias_table(n) {
                        return Fail;
                    }
                    to(
                        self,
                        CorePh::AfterTable {
                            aliased: true,
                            join,
                        },
                    )
                }
                _ => Fail,
            },
            CorePh::JoinLeft { natural } => match tok {
                Tok::Kw(Kw::OUTER) => to(self, CorePh::JoinNeedJoin { natural }),
                Tok::Kw(Kw::JOIN) => to(self, CorePh::FromItem { join: !natural }),
                _ => Fail,
            },
            CorePh::JoinNeedJoin { natural } => match tok {
                Tok::Kw(Kw::JOIN) => to(self, CorePh::FromItem { join: !natural }),
                _ => Fail,
            },
            CorePh::UsingOpen => match tok {
                Tok::LParen => to(self, CorePh::UsingName),
                _ => Fail,
            },
            CorePh::UsingName => match tok {
                Tok::Name(n, _) => {
                    let f = self.frame();
                    let k = f.tables.len();
                    // The column must be in the joined table and in one on its left.
                    let ok = k >= 2
                        && f.tables[k - 1].cols.has(n)
                        && f.tables[..k - 1].iter().filter(|t| t.cols.has(n)).count() == 1;
                    if ok {
                        to(self, CorePh::UsingAfter)
                    } else {
                        Fail
                    }
                }
                _ => Fail,
            },
            CorePh::UsingAfter => match tok {
                Tok::Comma => to(self, CorePh::UsingName),
                Tok::RParen => to(
                    self,
                    CorePh::AfterTable {
                        aliased: true,
                        join: false,
                    },
                ),
                _ => Fail,
            },
            CorePh::AfterWhere | CorePh::GroupList | CorePh::AfterHaving => match tok {
                Tok::Kw(Kw::GROUP) if ph == CorePh::AfterWhere => to(self, CorePh::GroupBy),
                Tok::Comma if ph == CorePh::GroupList => {
                    self.stack.push(St::Core(CorePh::GroupList));
                    self.push_expr(false, Role::Positional);
                    Consumed
                }
                Tok::Kw(Kw::HAVING) if ph == CorePh::GroupList => {
                    self.stack.push(St::Core(CorePh::AfterHaving));
                    self.push_expr(true, Role::Plain);
                    Consumed
                }
                t if ends_core(t) => {
                    if self.end_core() {
                        Redispatch
                    } else {
                        Fail
                    }
                }
                _ => Fail,
            },
            CorePh::GroupBy => match tok {
                Tok::Kw(Kw::BY) => {
                    self.frame_mut().aggregate = true;
                    self.stack.push(St::Core(CorePh::GroupList));
                    self.push_expr(false, Role::Positional);
                    Consumed
                }
                _ => Fail,
            },
        }
    }

    /// Whether the last table of the FROM clause shares a column with exactly one table on
    /// its left (what `USING` needs).
    fn using_possible(&self) -> bool {
        let e = Expect {
            using_col: true,
            ..Expect::default()
        };
        self.name_prefix_ok(&e, b"", true)
    }

    /// WHERE / GROUP BY / the end of a core, after the select list or the FROM clause.
    fn core_clause(&mut self, tok: &Tok) -> Step {
        match tok {
            Tok::Kw(Kw::WHERE) => {
                if !self.close_from() || !self.can_end_core() {
                    return Fail;
                }
                self.stack.push(St::Core(CorePh::AfterWhere));
                self.push_expr(false, Role::Plain);
                Consumed
            }
            Tok::Kw(Kw::GROUP) => {
                if !self.close_from() || !self.can_end_core() {
                    return Fail;
                }
                self.stack.push(St::Core(CorePh::GroupBy));
                Consumed
            }
            t if ends_core(t) => {
                if self.end_core() {
                    Redispatch
                } else {
                    Fail
                }
            }
            _ => Fail,
        }
    }

    /// Whether the select list's references qualified with `name` are columns of `cols` (the
    /// table that takes that name).
    /// With [`Options::requalify`], a base table may take the name anyway when the reference
    /// is the frame's own and some base table of the schema has the column: the FROM clause
    /// may still gain it ([`Parser::close_from`] checks).
    fn binds(&self, name: &str, t: &InScope) -> bool {
        self.frame()
            .deferred
            .iter()
            .filter(|r| r.qual.as_deref() == Some(name))
            .all(|r| {
                r.col.as_ref().is_none_or(|c| {
                    t.cols.has(c)
                        || (self.opts.requalify
                            && t.base
                            && r.own
                            && self.schema.tables.iter().any(|b| b.cols.has(c)))
                })
            })
    }

    /// Adds a table to the FROM clause; false when it would make a column the select list
    /// reads unqualified ambiguous ([`Parser::joinable`]).
    fn add_table(&mut self, name: Arc<str>, cols: Cols, base: bool) -> bool {
        if !self.joinable(&cols) {
            return false;
        }
        self.frame_mut().tables.push(InScope { name, cols, base });
        true
    }

    /// Whether a table with `cols` may join the current FROM clause: not when a column the
    /// select list read unqualified is already a column of a table there and also of this
    /// one (SQLite: ambiguous column name, and no later table can undo it). Tables whose
    /// columns are unknown ([`Cols::Any`]) are not counted.
    fn joinable(&self, cols: &Cols) -> bool {
        let Cols::Known(_) = cols else { return true };
        let f = self.frame();
        f.deferred
            .iter()
            .filter(|r| r.qual.is_none())
            .filter_map(|r| r.col.as_deref())
            .all(|c| {
                !cols.has(c)
                    || !f
                        .tables
                        .iter()
                        .any(|t| matches!(t.cols, Cols::Known(_)) && t.cols.has(c))
            })
    }

    fn alias_item(&mut self, n: &Arc<str>) {
        let f = self.frame_mut();
        if let Some(last) = f.outputs.last_mut() {
            *last = Out::Name(n.clone());
        }
        f.aliases.push(n.clone());
    }

    /// Names the last table of the FROM clause `n`.
    fn alias_table(&mut self, n: &Arc<str>) -> bool {
        if self.frame().has_name(n) {
            return false;
        }
        match self.frame().tables.last() {
            Some(t) if self.binds(n, t) => {}
            _ => return false,
        }
        let f = self.frame_mut();
        match f.tables.last_mut() {
            Some(t) => {
                t.name = n.clone();
                true
            }
            None => false,
        }
    }

    fn step_expr(&mut self, mut x: Expr, tok: &Tok) -> Step {
        if x.compound {
            // A number or a result column's name, then the end of the term.
            return match (&x.ph, tok) {
                (ExPh::Operand, Tok::Num(v)) => {
                    x.int = *v;
                    x.ph = ExPh::After;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                (ExPh::Operand, Tok::Name(n, _))
                    if self.out_names().is_none_or(|c| c.iter().any(|c| c == n)) =>
                {
                    x.simple = Some(n.clone());
                    x.ph = ExPh::After;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                (ExPh::After, _) => self.end_expr(x),
                _ => Fail,
            };
        }
        match x.ph.clone() {
            ExPh::Operand => {
                match tok {
                    Tok::Minus | Tok::Plus | Tok::Tilde | Tok::Kw(Kw::NOT) => {
                        x.signed = x.first || x.signed;
                        x.first = false;
                    }
                    Tok::Num(v) => {
                        x.int = if x.first { *v } else { None };
                        if x.signed && x.role == Role::Positional {
                            // SQLite reads `-1` as the integer -1: out of range.
                            x.int = Some(0);
                        }
                        x.ph = ExPh::After;
                    }
                    Tok::Str
                    | Tok::Kw(
                        Kw::NULL
                        | Kw::TRUE
                        | Kw::FALSE
                        | Kw::CURRENT_DATE
                        | Kw::CURRENT_TIME
                        | Kw::CURRENT_TIMESTAMP,
                    ) => {
                        x.ph = ExPh::After;
                    }
                    Tok::LParen => {
                        x.ph = ExPh::After;
                        let agg = x.agg;
                        self.stack.push(St::Expr(x));
                        self.stack.push(St::Paren {
                            ph: SubPh::Open,
                            agg,
                            list: false,
                        });
                        return Consumed;
                    }
                    Tok::Kw(Kw::CASE) => {
                        x.ph = ExPh::After;
                        let agg = x.agg;
                        self.stack.push(St::Expr(x));
                        self.stack.push(St::Case(CasePh::Start, agg));
                        return Consumed;
                    }
                    Tok::Kw(Kw::CAST) => {
                        x.ph = ExPh::After;
                        let agg = x.agg;
                        self.stack.push(St::Expr(x));
                        self.stack.push(St::Cast(0, agg));
                        return Consumed;
                    }
                    Tok::Kw(Kw::EXISTS) => {
                        x.ph = ExPh::After;
                        self.stack.push(St::Expr(x));
                        self.stack.push(St::Exists(SubPh::NeedParen));
                        return Consumed;
                    }
                    Tok::Name(n, quoted) => {
                        let f = if *quoted { None } else { func(n) };
                        let func_ok = f.is_some_and(|f| x.agg || !f.aggregate);
                        let qual = self.qual_ok(n);
                        let col = !matches!(self.lookup(n), Lookup::Missing);
                        if !func_ok && !qual && !col {
                            return Fail;
                        }
                        x.ph = ExPh::Word {
                            name: n.clone(),
                            func: func_ok,
                            qual,
                            col,
                        };
                    }
                    _ => return Fail,
                }
                self.stack.push(St::Expr(x));
                Consumed
            }
            ExPh::Word {
                name,
                func: is_func,
                qual,
                col,
            } => match tok {
                Tok::LParen if is_func => {
                    let Some(f) = func(&name) else { return Fail };
                    if f.aggregate && !self.frame().aggregate {
                        self.frame_mut().aggregate = true;
                    }
                    x.ph = ExPh::After;
                    x.first = false;
                    let agg = x.agg;
                    self.stack.push(St::Expr(x));
                    self.stack.push(St::Func {
                        f,
                        n: None,
                        agg,
                        distinct: false,
                        star: false,
                    });
                    Consumed
                }
                Tok::Dot if qual => {
                    x.ph = ExPh::QualDot(name);
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                _ if col => {
                    if !self.use_col(None, Some(&name)) {
                        return Fail;
                    }
                    if x.first {
                        x.simple = Some(name);
                    }
                    x.ph = ExPh::After;
                    self.stack.push(St::Expr(x));
                    Redispatch
                }
                _ => Fail,
            },
            ExPh::QualDot(q) => match tok {
                Tok::Name(c, _) => {
                    if !self.use_col(Some(&q), Some(c)) {
                        return Fail;
                    }
                    if x.first {
                        x.simple = Some(c.clone());
                        x.qualified = true;
                    }
                    x.ph = ExPh::After;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                Tok::Star if x.role == Role::SelectItem && x.first => {
                    if !self.use_col(Some(&q), None) {
                        return Fail;
                    }
                    if let Some(St::Core(CorePh::AfterItem { aliased })) = self.stack.last_mut() {
                        *aliased = true;
                    }
                    self.frame_mut().outputs.push(Out::QualStar(q));
                    x.ph = ExPh::StarDone;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                _ => Fail,
            },
            ExPh::StarDone => Redispatch,
            ExPh::After => {
                let cont = match tok {
                    Tok::Kw(Kw::AND) if self.in_positional_term() && !x.between => return Fail,
                    Tok::Kw(Kw::AND) if x.between => {
                        x.between = false;
                        ExPh::Operand
                    }
                    _ if x.between => match tok {
                        Tok::Plus | Tok::Minus | Tok::Star | Tok::Arith => ExPh::Operand,
                        _ => return Fail,
                    },
                    Tok::Plus
                    | Tok::Minus
                    | Tok::Star
                    | Tok::Arith
                    | Tok::Cmp
                    | Tok::Kw(Kw::AND | Kw::OR | Kw::LIKE | Kw::GLOB) => ExPh::Operand,
                    Tok::Kw(Kw::IS) => ExPh::Is,
                    Tok::Kw(Kw::NOT) => ExPh::Not,
                    Tok::Kw(Kw::IN) => ExPh::In,
                    Tok::Kw(Kw::BETWEEN) => {
                        x.between = true;
                        ExPh::Operand
                    }
                    Tok::Kw(Kw::ISNULL | Kw::NOTNULL) => ExPh::After,
                    Tok::Kw(Kw::COLLATE) => ExPh::Collate,
                    _ => return self.end_expr(x),
                };
                let collate = matches!(cont, ExPh::Collate);
                x.ph = cont;
                if !collate {
                    x.first = false;
                    x.signed = false;
                    x.simple = None;
                    x.int = None;
                } else if x.role == Role::SelectItem {
                    x.simple = None;
                }
                self.stack.push(St::Expr(x));
                Consumed
            }
            ExPh::Is => match tok {
                Tok::Kw(Kw::NOT) => {
                    x.ph = ExPh::Operand;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                Tok::Kw(Kw::DISTINCT) => {
                    x.ph = ExPh::IsDistinct;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                _ => {
                    x.ph = ExPh::Operand;
                    self.stack.push(St::Expr(x));
                    Redispatch
                }
            },
            ExPh::IsDistinct => match tok {
                Tok::Kw(Kw::FROM) => {
                    x.ph = ExPh::Operand;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                _ => Fail,
            },
            ExPh::Not => {
                x.ph = match tok {
                    Tok::Kw(Kw::IN) => ExPh::In,
                    Tok::Kw(Kw::LIKE | Kw::GLOB) => ExPh::Operand,
                    Tok::Kw(Kw::BETWEEN) => {
                        x.between = true;
                        ExPh::Operand
                    }
                    Tok::Kw(Kw::NULL) => ExPh::After,
                    _ => return Fail,
                };
                self.stack.push(St::Expr(x));
                Consumed
            }
            ExPh::In => match tok {
                Tok::LParen => {
                    x.ph = ExPh::After;
                    let agg = x.agg;
                    self.stack.push(St::Expr(x));
                    self.stack.push(St::Paren {
                        ph: SubPh::Open,
                        agg,
                        list: true,
                    });
                    Consumed
                }
                _ => Fail,
            },
            ExPh::Collate => match tok {
                Tok::Name(n, false) if COLLATIONS.contains(&&**n) => {
                    x.ph = ExPh::After;
                    self.stack.push(St::Expr(x));
                    Consumed
                }
                _ => Fail,
            },
        }
    }

    /// The expression `x` is complete: record what its parent needs and hand the token on.
    fn end_expr(&mut self, x: Expr) -> Step {
        self.last_int = x.int;
        match x.role {
            Role::SelectItem => {
                let out = match x.simple {
                    Some(n) => Out::Name(n),
                    None => Out::Unnamed,
                };
                self.frame_mut().outputs.push(out);
            }
            Role::Positional => {
                if !self.term_ok(&x) {
                    return Fail;
                }
            }
            Role::Plain => {}
        }
        Redispatch
    }

    /// Whether a qualifier (or its beginning) not declared yet may be used in a select list:
    /// a table or CTE name, or a short alias (`T1`, `c`, `emp`; at most
    /// [`FORWARD_ALIAS_MAX`] bytes), so that a misspelt column is not taken for an alias.
    fn forward_qual_ok(&self, q: &[u8], quoted: bool) -> bool {
        let starts =
            |n: &str| n.as_bytes().starts_with(q) && (quoted || n.bytes().all(is_word_byte));
        q.len() < FORWARD_ALIAS_MAX
            || (q.len() == FORWARD_ALIAS_MAX && std::str::from_utf8(q).is_ok_and(free_name_ok))
            || self.schema.tables.iter().any(|t| starts(&t.name))
            || self.ctes.iter().any(|c| starts(&c.name))
    }

    /// Whether the top of the stack is a word that can only be a qualifier (a `.` must follow
    /// it at once).
    pub(crate) fn qualifier_only(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(St::Expr(Expr {
                ph: ExPh::Word {
                    qual: true,
                    col: false,
                    func: false,
                    ..
                },
                ..
            }))
        )
    }

    fn qual_ok(&self, q: &str) -> bool {
        match self.lookup_qual(q) {
            (Some(_), _) => true,
            (None, Some(j)) => {
                self.forward_qual_ok(q.as_bytes(), true) && self.deferred_qual_ok(j, q, None)
            }
            (None, None) => false,
        }
    }
}
