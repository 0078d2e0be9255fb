"""Shared machinery for the flights / clinic / music dataset generators.

Python 3.11 standard library only. Everything is driven by explicit
``random.Random`` instances so that each generator rewrites its domain folder
byte-identically on every run.

A generator defines:
  * a schema (plain CREATE TABLE text),
  * the rows of each table (lists of tuples), written to data.sql,
  * intent templates (``Tpl``): one SQL shape with slots, several question
    paraphrases and a slot sampler that draws values from the real data.

``build_domain`` builds the database in memory, renders the examples, checks
the hard constraints (execution, SQL style, split leakage, unseen skeletons,
non-empty fraction) with asserts, writes the files and prints a summary.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Callable

# --------------------------------------------------------------------------
# data.sql writing
# --------------------------------------------------------------------------


def sql_value(v) -> str:
    """Render one Python value as an SQLite literal."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    raise TypeError(f"unsupported value {v!r}")


def render_data(tables: list[tuple[str, list[str], list[tuple]]]) -> str:
    """One INSERT per line, tables in the given (FK-safe) order."""
    out = []
    for name, cols, rows in tables:
        head = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ("
        for r in rows:
            assert len(r) == len(cols), (name, r)
            out.append(head + ", ".join(sql_value(v) for v in r) + ");")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# SQL helpers: tokenizer, skeleton, style checks, Spider hardness
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)"
    r"|(<=|>=|<>|!=|\|\||[(),*=<>+\-/%.;]))"
)


def tokenize(sql: str) -> list[str]:
    """Split SQL into tokens (strings keep their quotes)."""
    toks = []
    pos = 0
    sql = sql.rstrip()
    while pos < len(sql):
        m = _TOKEN_RE.match(sql, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot tokenize at {sql[pos:pos + 20]!r} in {sql!r}")
        toks.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return toks


def normalise(sql: str) -> str:
    """Lower-case, whitespace collapsed."""
    return " ".join(sql.lower().split())


def skeleton(sql: str) -> str:
    """Lower-cased, whitespace-collapsed, string and number literals -> _."""
    s = re.sub(r"'(?:[^']|'')*'", "_", sql)
    s = re.sub(r"\b\d+(?:\.\d+)?\b", "_", s)
    return normalise(s)


KEYWORDS = {
    "select", "from", "where", "group", "by", "having", "order", "limit",
    "join", "on", "as", "and", "or", "not", "in", "exists", "like", "between",
    "is", "null", "distinct", "union", "intersect", "except", "all", "case",
    "when", "then", "else", "end", "asc", "desc", "left", "inner", "offset",
    "cast", "count", "sum", "avg", "min", "max",
}
FORBIDDEN = {"glob", "regexp", "match", "indexed", "natural", "using", "with",
             "recursive", "pragma", "iif", "over", "partition", "attach",
             "insert", "update", "delete", "drop", "create", "alter"}


def check_style(sql: str) -> None:
    """Assert the SQL style the Rust parser and guard accept."""
    assert "\n" not in sql and "\r" not in sql, sql
    assert '"' not in sql and "`" not in sql, sql
    assert not sql.rstrip().endswith(";"), sql
    assert sql == sql.strip(), sql
    toks = tokenize(sql)
    assert ";" not in toks, sql
    for t in toks:
        if t.startswith("'"):
            continue
        low = t.lower()
        assert low not in FORBIDDEN, (t, sql)
        if low in KEYWORDS:
            assert t == t.upper(), f"keyword not upper-case: {t} in {sql}"


AGGS = {"COUNT", "SUM", "AVG", "MIN", "MAX"}
CLAUSES = ["SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT"]


def _split_depth0(toks: list[str], seps: set[str]) -> list[list[str]]:
    parts, cur, depth = [], [], 0
    for t in toks:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and t.upper() in seps:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    return parts


def _split_conds(toks: list[str]) -> tuple[list[list[str]], list[str]]:
    """Split a condition list on depth-0 AND/OR (BETWEEN x AND y kept)."""
    conds, conns, cur, depth, between = [], [], [], 0, False
    for t in toks:
        u = t.upper()
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and u == "BETWEEN":
            between = True
        if depth == 0 and u in ("AND", "OR"):
            if u == "AND" and between:
                between = False
                cur.append(t)
                continue
            conds.append(cur)
            conns.append(u.lower())
            cur = []
            continue
        cur.append(t)
    if cur:
        conds.append(cur)
    return conds, conns


def _has_subquery(toks: list[str]) -> bool:
    return any(toks[i] == "(" and toks[i + 1].upper() == "SELECT" for i in range(len(toks) - 1))


def _has_agg(toks: list[str]) -> bool:
    depth = 0
    for i, t in enumerate(toks):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if t.upper() == "SELECT" and i > 0:
            return False  # do not look into nested queries
        if t.upper() in AGGS and i + 1 < len(toks) and toks[i + 1] == "(":
            return True
    return False


def _depth0_not(cond: list[str]) -> bool:
    depth = 0
    for i, t in enumerate(cond):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and t.upper() == "NOT" and i + 1 < len(cond) and cond[i + 1].upper() in (
                "IN", "LIKE", "BETWEEN", "EXISTS"):
            return True
    return False


def _depth0_has(cond: list[str], word: str) -> bool:
    depth = 0
    for t in cond:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if depth == 0 and t.upper() == word:
            return True
    return False


def hardness(sql: str) -> str:
    """Best-effort port of Spider's Evaluator.eval_hardness on our SQL."""
    toks = tokenize(sql)
    parts = _split_depth0(toks, {"UNION", "INTERSECT", "EXCEPT"})
    main = [t for t in parts[0] if t.upper() != "ALL"]
    comp2 = 1 if len(parts) > 1 else 0
    # locate depth-0 clauses
    pos, depth = {}, 0
    for i, t in enumerate(main):
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t.upper() in CLAUSES and t.upper() not in pos:
            pos[t.upper()] = i
    order = sorted(pos.items(), key=lambda kv: kv[1])
    clause = {}
    for j, (name, start) in enumerate(order):
        end = order[j + 1][1] if j + 1 < len(order) else len(main)
        body = main[start + 1:end]
        if name in ("GROUP", "ORDER") and body and body[0].upper() == "BY":
            body = body[1:]
        clause[name] = body
    comp1 = 0
    others = 0
    agg = 0
    # FROM: table units and ON conditions
    frm = clause.get("FROM", [])
    f0 = _split_depth0(frm, {"JOIN", ","})
    n_tables = len(f0)
    comp1 += n_tables - 1
    from_conds = []
    for unit in f0:
        d = 0
        for i, t in enumerate(unit):
            if t == "(":
                d += 1
            elif t == ")":
                d -= 1
            if d == 0 and t.upper() == "ON":
                cs, cn = _split_conds(unit[i + 1:])
                from_conds += cs
                comp1 += cn.count("or")
                break
    where_conds, where_conns = _split_conds(clause.get("WHERE", []))
    having_conds, having_conns = _split_conds(clause.get("HAVING", []))
    if where_conds:
        comp1 += 1
    if "GROUP" in clause:
        comp1 += 1
    if "ORDER" in clause:
        comp1 += 1
    if "LIMIT" in clause:
        comp1 += 1
    comp1 += where_conns.count("or") + having_conns.count("or")
    for c in from_conds + where_conds + having_conds:
        if _depth0_has(c, "LIKE"):
            comp1 += 1
        if _has_subquery(c):
            comp2 += 1
    # aggregation count (Spider quirks kept: NOT conditions and HAVING
    # connectors count, HAVING aggregates do not)
    sel = clause.get("SELECT", [])
    if sel and sel[0].upper() == "DISTINCT":
        sel = sel[1:]
    sel_items = _split_depth0(sel, {","})
    agg += sum(1 for it in sel_items if _has_agg(it))
    agg += sum(1 for c in where_conds if _depth0_not(c))
    agg += sum(1 for it in _split_depth0(clause.get("ORDER", []), {","}) if _has_agg(it))
    agg += len(having_conns) + sum(1 for c in having_conds if _depth0_not(c))
    if agg > 1:
        others += 1
    if len(sel_items) > 1:
        others += 1
    if len(where_conds) > 1:
        others += 1
    if "GROUP" in clause and len(_split_depth0(clause["GROUP"], {","})) > 1:
        others += 1
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if ((others > 2 and comp1 <= 2 and comp2 == 0)
            or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
            or (comp1 <= 1 and others == 0 and comp2 <= 1)):
        return "hard"
    return "extra"


# --------------------------------------------------------------------------
# question noise
# --------------------------------------------------------------------------

TYPOS = {
    "which": "wich", "customers": "custmers", "passengers": "passangers",
    "appointments": "appointmets", "average": "averge", "their": "thier",
    "received": "recieved", "separate": "seperate", "flights": "flighs",
    "doctors": "docters", "tracks": "trakcs", "number": "numbr",
    "between": "betwen", "patients": "patiens", "artists": "artsts",
    "playlists": "playlsts", "airports": "airpots", "medications": "medicatons",
    "there": "ther", "different": "diferent", "each": "eahc", "total": "totla",
    "every": "evrey", "listened": "listend", "scheduled": "scheduald",
    "with": "whith", "many": "mnay", "what": "waht", "show": "shwo",
}


def add_typo(q: str, rng: random.Random, protect: frozenset = frozenset()) -> str:
    """Introduce one realistic typo (or drop an apostrophe), never inside slot values or quoted text."""
    words = q.split(" ")
    in_quote = False
    safe = []
    for w in words:
        starts = w.startswith("'")
        if starts:
            in_quote = True
        core = w.lower().strip("?,.!()'")
        safe.append(not in_quote and core not in protect and '"' not in w)
        if in_quote and (w.rstrip("?,.!)").endswith("'") and (len(w) > 1 or not starts)):
            in_quote = False
    if "'" in q and rng.random() < 0.4:
        idx = [i for i, w in enumerate(words) if safe[i] and re.search(r"[a-z]'[a-z]", w)]
        if idx:
            i = rng.choice(idx)
            words[i] = words[i].replace("'", "", 1)
            return " ".join(words)
    cand = [i for i, w in enumerate(words) if safe[i] and w.lower().strip("?,.") in TYPOS]
    if cand:
        i = rng.choice(cand)
        w = words[i]
        core = w.strip("?,.")
        rep = TYPOS[core.lower()]
        if core[0].isupper():
            rep = rep[0].upper() + rep[1:]
        words[i] = w.replace(core, rep)
        return " ".join(words)
    cand = [i for i, w in enumerate(words) if safe[i] and len(w) >= 6 and w.isalpha() and w.islower()]
    if cand:
        i = rng.choice(cand)
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


# --------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------


@dataclass
class Tpl:
    """One intent: an SQL shape, paraphrases and a slot sampler."""

    key: str
    sql: str
    qs: list[str]
    slots: Callable[[random.Random], dict] | None = None
    split: str = "shared"  # shared | test | dev
    allow_empty: bool = False
    variants: list = field(default_factory=list)


class Data:
    """Cached access to the built database for slot samplers."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._cache: dict[str, list[tuple]] = {}

    def rows(self, sql: str) -> list[tuple]:
        if sql not in self._cache:
            self._cache[sql] = self.conn.execute(sql).fetchall()
        return self._cache[sql]

    def pick(self, rng: random.Random, sql: str) -> tuple:
        rows = self.rows(sql)
        assert rows, f"sampler query returned nothing: {sql}"
        return rows[rng.randrange(len(rows))]


def esc(s: str) -> str:
    """Escape a value for use inside a single-quoted SQL literal."""
    return s.replace("'", "''")


MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]


def limit_tie(conn: sqlite3.Connection, sql: str) -> bool:
    """True when an ORDER BY ... LIMIT k query has a tie at the cut-off (ambiguous gold)."""
    m = re.search(r" ORDER BY (.+?)(?: DESC| ASC)? LIMIT (\d+)$", sql)
    if not m or " UNION " in sql or " INTERSECT " in sql or " EXCEPT " in sql:
        return False
    expr, k = m.group(1), int(m.group(2))
    probe = sql.replace("SELECT ", f"SELECT {expr} AS tie_key__, ", 1)
    probe = probe[: probe.rfind("LIMIT")] + f"LIMIT {k + 1}"
    rows = conn.execute(probe).fetchall()
    return len(rows) > k and rows[k - 1][0] == rows[k][0]


def _variants(t: Tpl, conn: sqlite3.Connection, rng: random.Random, want: int):
    """Distinct (sql, slots) renderings of one template."""
    out, seen = [], set()
    tries = 0
    while len(out) < want and tries < want * 25:
        tries += 1
        slots = t.slots(rng) if t.slots else {}
        sql = t.sql.format(**slots)
        if sql in seen:
            if not t.slots:
                break
            continue
        seen.add(sql)
        rows = conn.execute(sql).fetchall()
        if not rows and not t.allow_empty:
            continue
        if limit_tie(conn, sql):
            continue
        out.append((sql, slots, bool(rows)))
        if not t.slots:
            break
    return out


def build_domain(db_id: str, root: str, schema: str,
                 tables: list[tuple[str, list[str], list[tuple]]],
                 make_templates: Callable[[Data], list[Tpl]], seed: int,
                 n_train: int = 320, n_dev: int = 70, n_test: int = 120,
                 n_test_only: int = 64, n_dev_only: int = 20) -> None:
    """Build, check and write one domain folder."""
    out_dir = os.path.join(root, "datasets", db_id)
    os.makedirs(out_dir, exist_ok=True)
    data_sql = render_data(tables)
    assert len(data_sql.encode()) < 1_500_000, "data.sql too large"
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(schema)
    conn.executescript(data_sql)
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert not fk, f"foreign key violations: {fk[:5]}"
    n_tab = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    assert n_tab >= 5

    data = Data(conn)
    templates = make_templates(data)
    keys = [t.key for t in templates]
    assert len(keys) == len(set(keys)), "duplicate template keys"
    rng = random.Random(seed)
    for t in templates:
        want = 30 if t.slots else 1
        t.variants = _variants(t, conn, rng, want)
        assert t.variants, f"template {t.key} produced no usable query"

    splits: dict[str, list[tuple[str, str, str]]] = {"train": [], "dev": [], "test": []}
    used_q: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set()}
    sql_owner: dict[str, str] = {}  # normalised sql -> split that owns it (test/dev exclusive)
    qrng = random.Random(seed + 1)

    def make_q(t: Tpl, slots: dict, k: int) -> str:
        q = t.qs[k % len(t.qs)].format(**slots)
        q = q[0].upper() + q[1:] if q[0].islower() and qrng.random() < 0.7 else q
        if qrng.random() < 0.05:
            protect = frozenset(part.lower().strip("?,.!()'") for v in slots.values() if isinstance(v, str)
                                for part in v.split())
            q = add_typo(q, qrng, protect)
        return q

    def emit(split: str, t: Tpl, sql: str, slots: dict, k0: int) -> bool:
        for k in range(k0, k0 + len(t.qs)):
            q = make_q(t, slots, k)
            ql = q.lower()
            if ql in used_q[split]:
                continue
            if split == "test" and (ql in used_q["train"] or ql in used_q["dev"]):
                continue
            if split != "test" and ql in used_q["test"]:
                continue
            used_q[split].add(ql)
            splits[split].append((q, sql, t.key))
            return True
        return False

    def take_exclusive(split: str, t: Tpl, cursor: dict) -> bool:
        while cursor[t.key] < len(t.variants):
            sql, slots, _ = t.variants[cursor[t.key]]
            cursor[t.key] += 1
            n = normalise(sql)
            if n in sql_owner:
                continue
            if emit(split, t, sql, slots, qrng.randrange(len(t.qs))):
                sql_owner[n] = split
                return True
        return False

    test_only = [t for t in templates if t.split == "test"]
    dev_only = [t for t in templates if t.split == "dev"]
    shared = [t for t in templates if t.split == "shared"]
    cursor = {t.key: 0 for t in templates}

    def fill(split: str, pool: list[Tpl], quota: int) -> None:
        pool = list(pool)
        while len(splits[split]) < quota and pool:
            nxt = []
            for t in pool:
                if len(splits[split]) >= quota:
                    break
                if take_exclusive(split, t, cursor):
                    nxt.append(t)
            pool = nxt

    fill("test", test_only, n_test_only)
    fill("dev", dev_only, n_dev_only)
    sharable = [t for t in shared if t.slots and len(t.variants) >= 3]
    order = list(sharable)
    rng.shuffle(order)
    fill("test", order, n_test)
    rng.shuffle(order)
    fill("dev", order, n_dev)
    # train: remaining variants of shared templates, several paraphrases each
    pool = list(shared)
    rnd = 0
    while len(splits["train"]) < n_train and pool and rnd < 50:
        nxt = []
        for t in pool:
            if len(splits["train"]) >= n_train:
                break
            free = [v for v in t.variants if sql_owner.get(normalise(v[0])) is None]
            if not free:
                continue
            sql, slots, _ = free[rnd % len(free)]
            if emit("train", t, sql, slots, rnd + qrng.randrange(len(t.qs))):
                sql_owner.setdefault(normalise(sql), None)
                nxt.append(t)
            elif len(free) > rnd + 1:
                nxt.append(t)
        pool = nxt
        rnd += 1

    # ------------------------------------------------------------------
    # hard checks
    # ------------------------------------------------------------------
    nonempty_total = 0
    total = 0
    rows_out: dict[str, list[dict]] = {}
    diff_count: dict[str, dict[str, int]] = {}
    for split in ("train", "dev", "test"):
        items = splits[split]
        qs = [q.lower() for q, _, _ in items]
        assert len(qs) == len(set(qs)), f"duplicate question in {split}"
        rows_out[split] = []
        diff_count[split] = {"easy": 0, "medium": 0, "hard": 0, "extra": 0}
        for i, (q, sql, _key) in enumerate(items, 1):
            check_style(sql)
            res = conn.execute(sql).fetchall()
            total += 1
            nonempty_total += bool(res)
            d = hardness(sql)
            diff_count[split][d] += 1
            rows_out[split].append({"id": f"{db_id}_{split}_{i:04d}", "db_id": db_id,
                                    "question": q, "sql": sql, "difficulty": d})
    train_q = {r["question"].lower() for r in rows_out["train"]}
    dev_q = {r["question"].lower() for r in rows_out["dev"]}
    train_s = {normalise(r["sql"]) for r in rows_out["train"]}
    dev_s = {normalise(r["sql"]) for r in rows_out["dev"]}
    for r in rows_out["test"]:
        assert r["question"].lower() not in train_q | dev_q, r
        assert normalise(r["sql"]) not in train_s | dev_s, r
    train_sk = {skeleton(r["sql"]) for r in rows_out["train"]}
    unseen = sum(1 for r in rows_out["test"] if skeleton(r["sql"]) not in train_sk)
    frac_unseen = unseen / max(1, len(rows_out["test"]))
    frac_nonempty = nonempty_total / max(1, total)
    assert len(rows_out["train"]) >= 300, len(rows_out["train"])
    assert len(rows_out["dev"]) >= 60, len(rows_out["dev"])
    assert len(rows_out["test"]) >= 100, len(rows_out["test"])
    assert frac_unseen >= 0.45, frac_unseen
    assert frac_nonempty >= 0.92, frac_nonempty

    # ------------------------------------------------------------------
    # write
    # ------------------------------------------------------------------
    with open(os.path.join(out_dir, "schema.sql"), "w", encoding="utf-8", newline="\n") as f:
        f.write(schema.strip() + "\n")
    with open(os.path.join(out_dir, "data.sql"), "w", encoding="utf-8", newline="\n") as f:
        f.write(data_sql)
    for split in ("train", "dev", "test"):
        with open(os.path.join(out_dir, f"{split}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for r in rows_out[split]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------------
    # summary
    # ------------------------------------------------------------------
    print(f"== {db_id} ==")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        n = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
        print(f"  table {name:<20} {n:>6} rows")
    print(f"  data.sql {len(data_sql.encode()) / 1024:.0f} KiB")
    print(f"  templates: {len(templates)} (test-only {len(test_only)}, dev-only {len(dev_only)}, "
          f"shared {len(shared)})")
    used_keys = {k for s in splits.values() for _, _, k in s}
    unused = [t.key for t in templates if t.key not in used_keys]
    if unused:
        print(f"  WARNING unused templates: {unused}")
    print(f"  splits: train {len(rows_out['train'])}, dev {len(rows_out['dev'])}, "
          f"test {len(rows_out['test'])}")
    print(f"  non-empty results: {frac_nonempty:.1%}")
    print(f"  test with skeleton unseen in train: {unseen}/{len(rows_out['test'])} = {frac_unseen:.1%}")
    for split in ("train", "dev", "test"):
        print(f"  difficulty {split}: {diff_count[split]}")


DEMONYMS = {
    "United States": "American", "United Kingdom": "British", "Canada": "Canadian", "Germany": "German",
    "France": "French", "Spain": "Spanish", "Brazil": "Brazilian", "Mexico": "Mexican", "Japan": "Japanese",
    "Sweden": "Swedish", "Australia": "Australian", "India": "Indian", "Nigeria": "Nigerian", "Ireland": "Irish",
    "Norway": "Norwegian", "Netherlands": "Dutch", "Switzerland": "Swiss", "Portugal": "Portuguese",
    "New Zealand": "New Zealand", "Italy": "Italian",
}


def country_slots(c: str) -> dict:
    """Slots for a country value: the raw value, a phrase usable after 'in'/'from', an adjective."""
    ctry = "the " + c if c.startswith("United ") or c == "Netherlands" else c
    return {"country": c, "ctry": ctry, "adj": DEMONYMS.get(c, c)}


def country_phrasing(templates: list[Tpl]) -> list[Tpl]:
    """Rewrite '{country}' in questions: '{country} users' -> '{adj} users', else '{ctry}'."""
    for t in templates:
        qs = []
        for q in t.qs:
            q = re.sub(r"\{country\} (users|user|usernames|acts|artists|passengers)", r"{adj} \1", q)
            qs.append(q.replace("{country}", "{ctry}"))
        t.qs = qs
    return templates
