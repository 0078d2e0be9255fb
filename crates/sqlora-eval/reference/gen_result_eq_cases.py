#!/usr/bin/env python3
"""Generate reference verdicts of the official Spider test-suite evaluator's
`result_eq` for sqlora-eval's tests.

The verdicts come from the official code itself: pass the directory of a
checkout of taoyds/test-suite-sql-eval (the one holding exec_eval.py). Its
module-level imports of `parse` (needs sqlparse) and `tqdm` are stubbed, since
`result_eq` uses neither.

    python3 gen_result_eq_cases.py /path/to/test-suite-sql-eval \
        > ../tests/fixtures/result_eq_cases.json

Cases are seeded, so the output is reproducible. Each case is
{"gold": rows, "pred": rows, "order_matters": bool, "equal": bool}, rows being
lists of lists of JSON values (ints as integers, floats with a '.' or an
exponent, None as null, str as strings).
"""
import json
import random
import sys
import types


def load_result_eq(path):
    sys.path.insert(0, path)
    for name in ("parse", "tqdm"):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                stub = types.ModuleType(name)
                stub.get_all_preds_for_execution = None
                stub.remove_distinct = None
                sys.modules[name] = stub
    import exec_eval  # noqa: E402

    return exec_eval.result_eq


POOL = [0, 1, 2, 3, -1, 10**18, 1.0, 2.0, 2.5, 0.1, 1e20, -0.0,
        "a", "b", "1", "1.0", "1.5", "None", "", None]
LOW = [0, 1, 1.0, "1", None]


def table(rng, nrows, ncols, pool):
    return [tuple(rng.choice(pool) for _ in range(ncols)) for _ in range(nrows)]


def mutate(rng, gold):
    rows = list(gold)
    ncols = len(rows[0]) if rows else rng.randint(1, 3)
    kind = rng.choice([
        "same", "rows", "cols", "both", "dup", "value", "float", "drop",
        "addcol", "swapcol", "reverse", "empty", "pairing",
    ])
    if kind == "rows":
        rng.shuffle(rows)
    elif kind in ("cols", "both"):
        perm = list(range(ncols))
        rng.shuffle(perm)
        rows = [tuple(r[i] for i in perm) for r in rows]
        if kind == "both":
            rng.shuffle(rows)
    elif kind == "dup" and len(rows) >= 2:
        rows[rng.randrange(len(rows))] = rows[rng.randrange(len(rows))]
    elif kind == "value" and rows:
        i, j = rng.randrange(len(rows)), rng.randrange(ncols)
        r = list(rows[i])
        r[j] = rng.choice(POOL)
        rows[i] = tuple(r)
    elif kind == "float":
        rows = [tuple(float(v) if isinstance(v, int) and abs(v) < 2**53 else v for v in r)
                for r in rows]
    elif kind == "drop" and rows:
        rows.pop(rng.randrange(len(rows)))
    elif kind == "addcol":
        rows = [r + (rng.choice(POOL),) for r in rows]
    elif kind == "swapcol" and len(rows) >= 2:
        j = rng.randrange(ncols)
        a, b = rng.sample(range(len(rows)), 2)
        ra, rb = list(rows[a]), list(rows[b])
        ra[j], rb[j] = rb[j], ra[j]
        rows[a], rows[b] = tuple(ra), tuple(rb)
    elif kind == "reverse":
        rows.reverse()
    elif kind == "empty":
        rows = []
    elif kind == "pairing" and ncols >= 2 and len(rows) >= 2:
        # Same column contents, rows re-paired: a case for the permutation search.
        col = [r[0] for r in rows]
        rng.shuffle(col)
        rows = [(c,) + r[1:] for c, r in zip(col, rows)]
        perm = list(range(ncols))
        rng.shuffle(perm)
        rows = [tuple(r[i] for i in perm) for r in rows]
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    result_eq = load_result_eq(sys.argv[1])
    rng = random.Random(20240611)
    random.seed(0)  # the official code samples rows for > 3 columns
    cases = []
    for n in range(600):
        ncols = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])
        nrows = rng.randint(0, 6)
        pool = LOW if n % 3 == 0 else POOL
        gold = table(rng, nrows, ncols, pool)
        pred = mutate(rng, gold)
        order_matters = rng.random() < 0.4
        equal = result_eq(gold, pred, order_matters=order_matters)
        cases.append({
            "gold": [list(r) for r in gold],
            "pred": [list(r) for r in pred],
            "order_matters": order_matters,
            "equal": bool(equal),
        })
    json.dump(cases, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
