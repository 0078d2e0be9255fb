#!/usr/bin/env python3
"""Generate reference Spider hardness labels with the official evaluator code
for sqlora-eval's tests.

Pass the directory of a checkout of taoyds/test-suite-sql-eval (it holds
evaluation.py with Evaluator.eval_hardness, and process_sql.py with get_sql)
and the repository's datasets/ directory:

    python3 gen_hardness_cases.py /path/to/test-suite-sql-eval ../../../datasets \
        > ../tests/fixtures/hardness_cases.json

Every gold query of every domain that Spider's own parser accepts is labelled
(queries it rejects, e.g. column aliases or functions other than the five
aggregates, are skipped); a seeded sample of 600 is written, as
[{"db": ..., "sql": ..., "difficulty": ...}, ...].

Module-level imports the labelling does not use are stubbed when missing:
`parse` (needs sqlparse) and `tqdm`; and if nltk is not installed, its
`word_tokenize` is replaced by a regex that splits SQL the same way for these
queries (words with inner dots kept whole, every punctuation mark alone).
"""
import json
import os
import random
import re
import sqlite3
import sys
import types


def stub_missing():
    for name in ("parse", "tqdm"):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            m.get_all_preds_for_execution = None
            m.remove_distinct = None
            sys.modules[name] = m
    try:
        from nltk import word_tokenize  # noqa: F401
    except ImportError:
        m = types.ModuleType("nltk")
        m.word_tokenize = lambda s: re.findall(
            r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_*]+)*\.?|[^\sA-Za-z0-9_]", s)
        sys.modules["nltk"] = m


def schema_of(schema_sql):
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema_sql)
    schema = {}
    for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        schema[t.lower()] = [r[1].lower() for r in conn.execute(f"PRAGMA table_info({t})")]
    return schema


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.path.insert(0, sys.argv[1])
    stub_missing()
    from evaluation import Evaluator  # noqa: E402
    from process_sql import Schema, get_sql  # noqa: E402

    evaluator = Evaluator()
    root = sys.argv[2]
    cases = []
    for db in sorted(os.listdir(root)):
        schema_path = os.path.join(root, db, "schema.sql")
        if not os.path.exists(schema_path):
            continue
        with open(schema_path) as f:
            schema = Schema(schema_of(f.read()))
        for split in ("train.jsonl", "dev.jsonl", "test.jsonl"):
            path = os.path.join(root, db, split)
            if not os.path.exists(path):
                continue
            with open(path) as f:
                for line in f:
                    sql = json.loads(line)["sql"]
                    try:
                        parsed = get_sql(schema, sql)
                    except Exception:
                        continue
                    cases.append({"db": db, "sql": sql,
                                  "difficulty": evaluator.eval_hardness(parsed)})
    random.Random(7).shuffle(cases)
    json.dump(cases[:600], sys.stdout, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
