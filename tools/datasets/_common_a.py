"""Shared helpers for the bundled dataset generators (retail, hr, library).

Python 3.11 standard library only. Everything is deterministic: callers pass
`random.Random(seed)` instances and every query result used for sampling is
sorted before a choice is made.

A domain generator provides:
  * SCHEMA (text of schema.sql)
  * rows: dict table -> (columns, list of row tuples), in insertion order
  * a list of `T` templates (SQL with slots + question paraphrases)
and calls `build_domain(...)`, which writes schema.sql, data.sql and the
three jsonl splits, checks every hard constraint with asserts and prints a
summary.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Values and slots
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class V:
    """A slot value with a SQL form and a (possibly different) question form."""

    sql: object
    text: str


@dataclass(frozen=True)
class Raw:
    """A SQL fragment substituted verbatim (no quoting) with a question form."""

    sql: str
    text: str


def sql_literal(v: object) -> str:
    """Render a Python value as a SQLite literal."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.2f}"
    s = str(v)
    return "'" + s.replace("'", "''") + "'"


MONTHS = [
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
]


def human_date(iso: str, rng: random.Random, style: int | None = None) -> str:
    """'2024-03-17' -> one of several human spellings (style 0-3, random if None)."""
    y, m, d = iso[:10].split("-")
    mi, di = int(m), int(d)
    if style is None:
        style = rng.randrange(4)
    if style == 0:
        return iso[:10]
    if style == 1:
        return f"{MONTHS[mi - 1]} {di}, {y}"
    if style == 2:
        return f"{di} {MONTHS[mi - 1]} {y}"
    return f"{MONTHS[mi - 1][:3]} {di} {y}"


def date_v(iso: str, rng: random.Random, style: int | None = None) -> V:
    """A date slot: ISO in SQL, varied spelling in the question."""
    return V(iso[:10], human_date(iso, rng, style))


def month_v(ym: str, rng: random.Random) -> V:
    """'2023-05' -> V('2023-05', 'May 2023' / '2023-05')."""
    y, m = ym.split("-")
    if rng.random() < 0.3:
        return V(ym, ym)
    return V(ym, f"{MONTHS[int(m) - 1]} {y}")


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------



@dataclass
class T:
    """One intent: a SQL shape, question paraphrases and slot samplers.

    `slots` maps a name (or tuple of names) to a SQL query whose result rows
    are sampled, a list of choices, or a callable(rng, db) returning a dict.
    `split` is None (shared by train/dev/test with different values),
    'test' (test only) or 'dev' (dev only).
    """

    name: str
    sql: str
    questions: list[str]
    slots: dict = field(default_factory=dict)
    split: str | None = None
    allow_empty: bool = False
    tie_col: int | None = None


def _sample_slots(t: T, rng: random.Random, db: sqlite3.Connection, cache: dict) -> dict:
    out: dict = {}
    for key, spec in t.slots.items():
        if callable(spec):
            vals = spec(rng, db)
            out.update(vals)
            continue
        if isinstance(spec, str):
            ck = spec
            if ck not in cache:
                rows = db.execute(spec).fetchall()
                rows = sorted(set(rows), key=lambda r: tuple("" if x is None else str(x) for x in r))
                assert rows, f"slot query returned nothing: {spec}"
                cache[ck] = rows
            row = rng.choice(cache[ck])
        else:
            row = rng.choice(list(spec))
            if not isinstance(row, tuple) or isinstance(key, str):
                row = (row,)
        if isinstance(key, tuple):
            assert len(key) == len(row), (key, row)
            for k, v in zip(key, row):
                out[k] = v
        else:
            out[key] = row[0]
    return out


def _fmt_sql(s: str, vals: dict) -> str:
    def rep(m: re.Match) -> str:
        v = vals[m.group(1)]
        if isinstance(v, Raw):
            return v.sql
        if isinstance(v, V):
            return sql_literal(v.sql)
        return sql_literal(v)

    return re.sub(r"\{(\w+)\}", rep, s)


def _fmt_q(s: str, vals: dict) -> str:
    def rep(m: re.Match) -> str:
        v = vals[m.group(1)]
        if isinstance(v, (Raw, V)):
            return v.text
        if isinstance(v, float):
            return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
        return str(v)

    return re.sub(r"\{(\w+)\}", rep, s)


# ---------------------------------------------------------------------------
# Typos
# ---------------------------------------------------------------------------

TYPOS = {
    "customers": "custmers", "customer": "custmer", "which": "wich",
    "received": "recieved", "average": "avarage", "employees": "employes",
    "employee": "employe", "salary": "salray", "salaries": "salaries",
    "department": "departmnet", "departments": "deparments", "products": "prodcuts",
    "product": "prodcut", "members": "memebers", "library": "libary",
    "separate": "seperate", "category": "catagory", "categories": "catagories",
    "quantity": "quanity", "their": "thier", "with": "wiht", "orders": "oders",
    "borrowed": "borowed", "supplier": "suplier", "suppliers": "supliers",
    "number": "nubmer", "total": "totla", "between": "betwen", "books": "boks",
    "project": "projcet", "projects": "porjects", "returned": "retuned",
    "authors": "autors", "highest": "higest", "address": "adress",
    "reviews": "reveiws", "manager": "manger", "listed": "listd",
    "book": "bok", "title": "tittle", "titles": "tittles", "genre": "genere", "branch": "brach",
    "branches": "braches", "loans": "laons", "author": "auther", "fines": "fnies", "copies": "copys",
    "patrons": "patrions", "borrowing": "borowing", "many": "mnay", "written": "writen",
}


def maybe_typo(q: str, rng: random.Random, protected: list[str] | None = None, p: float = 0.055) -> str:
    """With probability p introduce one realistic typo.

    Slot values (`protected`) and quoted text are never altered, so the gold
    SQL literals still match what the question asks for.
    """
    if rng.random() >= p:
        return q
    spans = [(m.start(), m.end()) for m in re.finditer(r"'[^']*'", q)]
    for text in protected or []:
        if text:
            spans += [(m.start(), m.end()) for m in re.finditer(re.escape(text), q)]

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in spans)

    if "'" in q and rng.random() < 0.4:
        # drop the apostrophe of a contraction / possessive
        for m in re.finditer(r"(\w)'(s|t|re|ve|ll|d)\b", q):
            if free(m.start(), m.end()):
                return q[: m.start() + 1] + q[m.start() + 2:]
    cands = [m for m in re.finditer(r"[A-Za-z]+", q)
             if m.group(0).lower() in TYPOS and TYPOS[m.group(0).lower()] != m.group(0).lower()
             and free(m.start(), m.end())]
    if not cands:
        return q
    m = rng.choice(cands)
    w = m.group(0)
    typo = TYPOS[w.lower()]
    if w[0].isupper():
        typo = typo[0].upper() + typo[1:]
    return q[: m.start()] + typo + q[m.end():]


# ---------------------------------------------------------------------------
# SQL checks: style, skeleton, hardness
# ---------------------------------------------------------------------------

KEYWORDS = {
    "select", "from", "where", "group", "by", "having", "order", "limit", "join",
    "on", "and", "or", "not", "in", "exists", "union", "intersect", "except",
    "distinct", "as", "asc", "desc", "like", "between", "is", "null", "case",
    "when", "then", "else", "end", "left", "inner", "count", "sum", "avg",
    "min", "max", "all", "offset", "cast", "outer",
}
FORBIDDEN = {"glob", "regexp", "match", "indexed", "over", "natural", "using",
             "recursive", "pragma", "iif", "attach", "window", "partition"}

_TOKEN_RE = re.compile(
    r"\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(<=|>=|<>|!=|\|\||[(),.*=<>+\-/%]))"
)


def tokenize(sql: str) -> list[tuple[str, str]]:
    """Tokens as (kind, text), kind in str/num/word/op."""
    toks = []
    pos = 0
    sql = sql.rstrip()
    while pos < len(sql):
        m = _TOKEN_RE.match(sql, pos)
        assert m and m.end() > pos, f"cannot tokenize at {sql[pos:pos + 30]!r} in {sql}"
        if m.group(1) is not None:
            toks.append(("str", m.group(1)))
        elif m.group(2) is not None:
            toks.append(("num", m.group(2)))
        elif m.group(3) is not None:
            toks.append(("word", m.group(3)))
        else:
            toks.append(("op", m.group(4)))
        pos = m.end()
    return toks


def check_style(sql: str) -> None:
    """Assert the SQL style constraints of the brief."""
    assert "\n" not in sql and not sql.strip().endswith(";"), sql
    assert '"' not in sql and "`" not in sql and ";" not in sql, sql
    assert sql == sql.strip() and "  " not in sql, sql
    for kind, text in tokenize(sql):
        if kind != "word":
            continue
        low = text.lower()
        assert low not in FORBIDDEN, f"forbidden {text} in {sql}"
        if low in KEYWORDS:
            assert text == text.upper(), f"keyword not upper-case: {text} in {sql}"
    assert "now" not in re.sub(r"'(?:[^']|'')*'", "", sql).lower().split() and "'now'" not in sql.lower(), sql


def norm_sql(sql: str) -> str:
    return " ".join(sql.lower().split())


def skeleton(sql: str) -> str:
    s = norm_sql(sql)
    s = re.sub(r"'(?:[^']|'')*'", "_", s)
    s = re.sub(r"\b\d+(?:\.\d+)?\b", "_", s)
    return s


AGGS = {"count", "sum", "avg", "min", "max"}
CLAUSES = ["select", "from", "where", "group", "having", "order", "limit"]
SETOPS = {"union", "intersect", "except"}


def _split_top(toks):
    """Return (clauses dict name->list of items, n_setops) for the top level.

    Items are tokens or ('sub', tokens) for parenthesised subqueries.
    """
    clauses: dict[str, list] = {}
    cur = None
    depth = 0
    i = 0
    setop = False
    while i < len(toks):
        kind, text = toks[i]
        low = text.lower() if kind == "word" else text
        if kind == "op" and text == "(":
            # find matching paren
            j, d = i, 0
            while True:
                if toks[j][1] == "(":
                    d += 1
                elif toks[j][1] == ")":
                    d -= 1
                    if d == 0:
                        break
                j += 1
            inner = toks[i + 1: j]
            is_sub = bool(inner) and inner[0][0] == "word" and inner[0][1].lower() == "select"
            if cur is not None:
                clauses[cur].append(("sub", inner) if is_sub else ("grp", inner))
            i = j + 1
            continue
        if kind == "word" and low in SETOPS and depth == 0:
            setop = True
            break
        if kind == "word" and low in CLAUSES:
            cur = low
            clauses.setdefault(cur, [])
            i += 1
            if low in ("group", "order"):
                i += 1  # BY
            continue
        if cur is not None:
            clauses[cur].append((kind, low))
        i += 1
    return clauses, setop


def _flat(items):
    """Flatten grp items (not subqueries)."""
    out = []
    for it in items:
        if it[0] == "grp":
            out.append(("op", "("))
            out.extend(_flat(_norm_items(it[1])))
            out.append(("op", ")"))
        else:
            out.append(it)
    return out


def _norm_items(toks):
    items = []
    i = 0
    while i < len(toks):
        k, t = toks[i]
        if t == "(":
            j, d = i, 0
            while True:
                if toks[j][1] == "(":
                    d += 1
                elif toks[j][1] == ")":
                    d -= 1
                    if d == 0:
                        break
                j += 1
            inner = toks[i + 1: j]
            is_sub = bool(inner) and inner[0][0] == "word" and inner[0][1].lower() == "select"
            items.append(("sub", inner) if is_sub else ("grp", inner))
            i = j + 1
            continue
        items.append((k, t.lower() if k == "word" else t))
        i += 1
    return items


def _count_aggs(items) -> int:
    flat = _flat(items)
    n = 0
    for idx, it in enumerate(flat):
        if it[0] == "word" and it[1] in AGGS and idx + 1 < len(flat) and flat[idx + 1] == ("op", "("):
            n += 1
    return n


def _top_level(items, word):
    return sum(1 for it in items if it == ("word", word))


def hardness(sql: str) -> str:
    """Best-effort port of Spider's Evaluator.eval_hardness."""
    clauses, setop = _split_top(tokenize(sql))
    where = clauses.get("where", [])
    having = clauses.get("having", [])
    frm = clauses.get("from", [])
    sel = clauses.get("select", [])
    grp = clauses.get("group", [])
    order = clauses.get("order", [])
    # where conditions: AND/OR (also inside plain parentheses), minus BETWEEN ... AND
    where = _flat(where)
    w_and = _top_level(where, "and") - _top_level(where, "between")
    w_or = _top_level(where, "or")
    n_where_conds = (1 + w_and + w_or) if where else 0
    comp1 = 0
    comp1 += 1 if where else 0
    comp1 += 1 if grp else 0
    comp1 += 1 if order else 0
    comp1 += 1 if "limit" in clauses else 0
    n_tables = 1 + _top_level(frm, "join") + sum(1 for it in frm if it == ("op", ","))
    comp1 += n_tables - 1
    comp1 += w_or + _top_level(having, "or") + _top_level(frm, "or")
    comp1 += _top_level(where, "like")
    nested = sum(1 for it in where + having if it[0] == "sub")
    comp2 = nested + (1 if setop else 0)
    others = 0
    # Spider's count_agg quirks: one per SELECT item holding an aggregate; over
    # WHERE it counts NOT IN/LIKE/BETWEEN units, over HAVING every AND/OR
    # connector plus such NOT units (it reads cond_unit[0], the not_op).
    items: list[list] = [[]]
    for it in sel:
        if it == ("op", ","):
            items.append([])
        else:
            items[-1].append(it)
    sel_aggs = sum(1 for item in items if _count_aggs(item) > 0)

    def nots(cond: list) -> int:
        return sum(1 for i in range(len(cond) - 1)
                   if cond[i] == ("word", "not") and cond[i + 1] in (("word", "in"), ("word", "like"),
                                                                      ("word", "between")))

    hav = _flat(having)
    agg = sel_aggs + _count_aggs(grp) + _count_aggs(order) + nots(where)
    agg += _top_level(hav, "and") - _top_level(hav, "between") + _top_level(hav, "or") + nots(hav)
    if agg > 1:
        others += 1
    sel_cols = 1 + sum(1 for it in sel if it == ("op", ","))
    if sel_cols > 1:
        others += 1
    if n_where_conds > 1:
        others += 1
    if grp and 1 + sum(1 for it in grp if it == ("op", ",")) > 1:
        others += 1
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (others > 2 and comp1 <= 2 and comp2 == 0) or (2 < comp1 <= 3 and others <= 2 and comp2 == 0) or (
        comp1 <= 1 and others == 0 and comp2 <= 1
    ):
        return "hard"
    return "extra"


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def data_sql(tables: list[tuple[str, list[str], list[tuple]]]) -> str:
    lines = []
    for name, cols, rows in tables:
        head = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ("
        for r in rows:
            assert len(r) == len(cols), (name, r)
            lines.append(head + ", ".join(sql_literal(v) for v in r) + ");")
    return "\n".join(lines) + "\n"


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


_LIMIT_RE = re.compile(r" LIMIT (\d+)$")


def _has_tie(t: T, sql: str, db: sqlite3.Connection) -> bool:
    """True when a top-level ORDER BY ... LIMIT n cuts through a tie."""
    m = _LIMIT_RE.search(sql)
    if not m:
        return False
    assert t.tie_col is not None, f"{t.name}: LIMIT query needs tie_col"
    n = int(m.group(1))
    rows = db.execute(sql[: m.start()] + f" LIMIT {n + 1}").fetchall()
    if len(rows) <= n:
        return False
    return rows[n - 1][t.tie_col] == rows[n][t.tie_col]


@dataclass
class Example:
    template: str
    question: str
    sql: str


def build_domain(
    domain: str,
    schema: str,
    tables: list[tuple[str, list[str], list[tuple]]],
    templates: list[T],
    seed: int,
    targets: tuple[int, int, int] = (320, 70, 120),
    min_unseen: float = 0.45,
) -> None:
    """Write datasets/<domain>/ and check every constraint."""
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    out_dir = os.path.join(root, "datasets", domain)
    os.makedirs(out_dir, exist_ok=True)
    data_text = data_sql(tables)
    assert len(data_text.encode()) < 1_500_000, "data.sql too large"
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(schema)
    db.executescript(data_text)
    fk = db.execute("PRAGMA foreign_key_check").fetchall()
    assert not fk, f"foreign key violations: {fk[:5]}"
    names = [t.name for t in templates]
    assert len(names) == len(set(names)), "duplicate template names"

    rng = random.Random(seed)
    cache: dict = {}
    split_names = ["test", "dev", "train"]
    target = {"train": targets[0], "dev": targets[1], "test": targets[2]}
    results: dict[str, list[Example]] = {s: [] for s in split_names}
    test_sql: set[str] = set()
    test_q: set[str] = set()
    seen_q: dict[str, set[str]] = {s: set() for s in split_names}
    # per template, per split, SQL already used (limit repeats of the same SQL)
    used_sql: dict[tuple[str, str], dict[str, int]] = {}
    nonempty_fail: dict[str, int] = {}

    def pool(split: str) -> list[T]:
        if split == "test":
            return [t for t in templates if t.split in (None, "test")]
        if split == "dev":
            return [t for t in templates if t.split in (None, "dev")]
        return [t for t in templates if t.split is None]

    def try_instance(t: T, split: str) -> Example | None:
        for _ in range(40):
            vals = _sample_slots(t, rng, db, cache)
            sql = _fmt_sql(t.sql, vals)
            q = _fmt_q(rng.choice(t.questions), vals)
            protected = [v.text if isinstance(v, (V, Raw)) else _fmt_q("{x}", {"x": v}) for v in vals.values()]
            q = maybe_typo(q, rng, protected)
            starts_with_value = any(t and q.startswith(t) for t in protected)
            if rng.random() < 0.9 or starts_with_value:
                q = q[0].upper() + q[1:]
            else:
                q = q[0].lower() + q[1:]
            n = norm_sql(sql)
            ql = q.lower()
            if ql in seen_q[split]:
                continue
            if split != "test" and (n in test_sql or ql in test_q):
                continue
            counts = used_sql.setdefault((t.name, split), {})
            max_rep = 2 if not t.slots else 1
            if counts.get(n, 0) >= max_rep:
                continue
            check_style(sql)
            try:
                rows = db.execute(sql).fetchall()
            except sqlite3.Error as e:  # pragma: no cover - a template bug
                raise AssertionError(f"{t.name}: {e}: {sql}") from e
            if not rows and not t.allow_empty:
                nonempty_fail[t.name] = nonempty_fail.get(t.name, 0) + 1
                continue
            if _has_tie(t, sql, db):
                continue
            counts[n] = counts.get(n, 0) + 1
            seen_q[split].add(ql)
            if split == "test":
                test_sql.add(n)
                test_q.add(ql)
            return Example(t.name, q, sql)
        return None

    # Test first: held-out templates get a larger share so that at least
    # min_unseen of test has a skeleton unseen in train.
    for split in split_names:
        p = pool(split)
        exhausted: set[str] = set()
        only = [t for t in p if t.split == split]
        shared = [t for t in p if t.split is None]
        # weights: split-only templates appear more often in their split
        order: list[T] = []
        if split == "train":
            order = shared
        else:
            order = only * 4 + shared
        # caps keep one template from flooding a split; relaxed if needed
        caps = {"train": (10**6, 10**6), "dev": (5, 2), "test": (7, 2)}[split]
        per_t: dict[str, int] = {}
        for relax in (0, 1, 2, 3):
            k = 0
            exhausted = set()
            while len(results[split]) < target[split] and len(exhausted) < len({t.name for t in order}):
                t = order[k % len(order)]
                k += 1
                if t.name in exhausted:
                    continue
                cap = (caps[0] if t.split == split else caps[1]) + relax
                if per_t.get(t.name, 0) >= cap:
                    exhausted.add(t.name)
                    continue
                ex = try_instance(t, split)
                if ex is None:
                    exhausted.add(t.name)
                    continue
                per_t[t.name] = per_t.get(t.name, 0) + 1
                results[split].append(ex)
        # interleave order deterministically by shuffling
        rng.shuffle(results[split])

    # --- checks -----------------------------------------------------------
    train_sk = {skeleton(e.sql) for e in results["train"]}
    train_dev_sql = {norm_sql(e.sql) for s in ("train", "dev") for e in results[s]}
    train_dev_q = {e.question.lower() for s in ("train", "dev") for e in results[s]}
    for e in results["test"]:
        assert norm_sql(e.sql) not in train_dev_sql, e.sql
        assert e.question.lower() not in train_dev_q, e.question
    for s in split_names:
        qs = [e.question.lower() for e in results[s]]
        assert len(qs) == len(set(qs)), f"duplicate question in {s}"
    assert len(results["train"]) >= 300, len(results["train"])
    assert len(results["dev"]) >= 60, len(results["dev"])
    assert len(results["test"]) >= 100, len(results["test"])
    unseen = sum(1 for e in results["test"] if skeleton(e.sql) not in train_sk) / len(results["test"])
    assert unseen >= min_unseen, f"unseen skeleton fraction {unseen:.2f}"
    total = 0
    nonempty = 0
    diff_counts: dict[str, dict[str, int]] = {}
    for s in split_names:
        for e in results[s]:
            total += 1
            if db.execute(e.sql).fetchall():
                nonempty += 1
            d = hardness(e.sql)
            diff_counts.setdefault(s, {}).setdefault(d, 0)
            diff_counts[s][d] += 1
    frac = nonempty / total
    assert frac >= 0.92, f"non-empty fraction {frac:.3f}"

    unused = [t.name for t in templates if not any(e.template == t.name for s in split_names for e in results[s])]
    assert not unused, f"templates never instantiated: {unused} (empty-result rejects: {nonempty_fail})"

    # --- write --------------------------------------------------------------
    _write(os.path.join(out_dir, "schema.sql"), schema.strip() + "\n")
    _write(os.path.join(out_dir, "data.sql"), data_text)
    file_split = {"train": "train", "dev": "dev", "test": "test"}
    for s in split_names:
        lines = []
        for i, e in enumerate(results[s], 1):
            obj = {
                "id": f"{domain}_{file_split[s]}_{i:04d}",
                "db_id": domain,
                "question": e.question,
                "sql": e.sql,
                "difficulty": hardness(e.sql),
            }
            lines.append(json.dumps(obj, ensure_ascii=False))
        _write(os.path.join(out_dir, f"{s}.jsonl"), "\n".join(lines) + "\n")

    # --- summary ------------------------------------------------------------
    print(f"== {domain} ==")
    for name, _cols, rows in tables:
        print(f"  {name:20s} {len(rows):5d} rows")
    print(f"  templates: {len(templates)} (test-only {sum(t.split == 'test' for t in templates)}, "
          f"dev-only {sum(t.split == 'dev' for t in templates)})")
    print(f"  distinct skeletons: {len({skeleton(e.sql) for s in split_names for e in results[s]})}")
    for s in ("train", "dev", "test"):
        print(f"  {s:5s}: {len(results[s]):4d} examples, difficulty {dict(sorted(diff_counts[s].items()))}")
    print(f"  non-empty results: {frac:.3f}")
    print(f"  test examples with a skeleton unseen in train: {unseen:.3f}")
    print(f"  data.sql: {len(data_text.encode())} bytes")
