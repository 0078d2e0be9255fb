#!/usr/bin/env python3
"""Generate reference verdicts of the official evaluator's `eval_exec_match`
(test-suite mode, keep_distinct=True, plug_value=False) for sqlora-eval's tests.

Pass the directory of a checkout of taoyds/test-suite-sql-eval (holding
exec_eval.py). The three databases of the suite are built from
../tests/fixtures/exec_suite/{base,v1,v2}.sql; every ordered pair of queries
from QUERIES below is judged (gold, prediction), skipping gold queries that
fail.

    python3 gen_exec_match_cases.py /path/to/test-suite-sql-eval \
        > ../tests/fixtures/exec_match_cases.json

keep_distinct=True because the official DISTINCT removal needs sqlparse; the
module-level imports `parse` and `tqdm` are stubbed when missing.
"""
import json
import os
import sqlite3
import sys
import tempfile
import types

QUERIES = [
    "SELECT name FROM emp",
    "SELECT DISTINCT name FROM emp",
    "SELECT name FROM emp ORDER BY name",
    "SELECT name FROM emp ORDER BY name DESC",
    "SELECT name, dept FROM emp",
    "SELECT dept, name FROM emp",
    "SELECT name, dept FROM emp ORDER BY id",
    "SELECT dept, name FROM emp ORDER BY id",
    "SELECT count(*) FROM emp",
    "SELECT count(*) * 1.0 FROM emp",
    "SELECT count(DISTINCT dept) FROM emp",
    "SELECT count(dept) FROM emp",
    "SELECT salary FROM emp WHERE age > 30",
    "SELECT salary FROM emp WHERE age > = 31",
    "SELECT salary FROM emp WHERE age >= 31",
    "SELECT CAST(salary AS INTEGER) FROM emp WHERE age > 30",
    "SELECT bonus FROM emp",
    "SELECT bonus FROM emp WHERE bonus IS NOT NULL",
    "SELECT dept, avg(salary) FROM emp GROUP BY dept",
    "SELECT avg(salary), dept FROM emp GROUP BY dept",
    "SELECT dept, sum(salary) FROM emp GROUP BY dept",
    "SELECT dept, count(*) FROM emp GROUP BY dept ORDER BY count(*) DESC, dept",
    "SELECT dept, count(*) FROM emp GROUP BY dept ORDER BY count(*), dept",
    "SELECT T2.city FROM emp AS T1 JOIN dept AS T2 ON T1.dept = T2.name",
    "SELECT DISTINCT T2.city FROM emp AS T1 JOIN dept AS T2 ON T1.dept = T2.name",
    "SELECT city FROM dept",
    "SELECT name FROM emp WHERE salary > (SELECT avg(salary) FROM emp)",
    "SELECT name FROM emp WHERE id IN (1, 2, 4)",
    "SELECT name FROM emp ORDER BY salary DESC LIMIT 1",
    "SELECT name FROM emp ORDER BY salary DESC LIMIT 2",
    "SELECT name FROM emp WHERE salary = (SELECT max(salary) FROM emp)",
    "SELECT name, age, salary, dept, id FROM emp",
    "SELECT id, dept, salary, age, name FROM emp",
    "SELECT name, age, salary, dept, bonus FROM emp",
    "SELECT nosuchcolumn FROM emp",
    "SELECT name FROM emp WHERE",
    "SELECT name FROM emp WHERE age > 30 INTERSECT SELECT name FROM emp WHERE dept = 'eng'",
    "SELECT name FROM emp WHERE age > 30 AND dept = 'eng'",
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.path.insert(0, sys.argv[1])
    for name in ("parse", "tqdm"):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            m.get_all_preds_for_execution = None
            m.remove_distinct = None
            sys.modules[name] = m
    import exec_eval  # noqa: E402

    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(here, "..", "tests", "fixtures", "exec_suite")
    with tempfile.TemporaryDirectory() as tmp:
        suite = os.path.join(tmp, "emp")
        os.mkdir(suite)
        for name in ("base", "v1", "v2"):
            conn = sqlite3.connect(os.path.join(suite, name + ".sqlite"))
            with open(os.path.join(fixtures, name + ".sql")) as f:
                conn.executescript(f.read())
            conn.commit()
            conn.close()
        first = os.path.join(suite, "base.sqlite")
        cases = []
        for gold in QUERIES:
            for pred in QUERIES:
                try:
                    ok = exec_eval.eval_exec_match(first, pred, gold, False, True, False)
                except AssertionError:
                    break  # the gold query fails: not a usable gold
                cases.append({"gold": gold, "pred": pred, "correct": bool(ok)})
    json.dump(cases, sys.stdout, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
