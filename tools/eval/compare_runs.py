#!/usr/bin/env python3
"""Compare two runs of `sqlora eval --details` question by question, for EVALUATION.md.

Usage: tools/eval/compare_runs.py BEFORE AFTER [--list]

BEFORE and AFTER are folders of `*.details.jsonl` files (e.g. two `runs/zero_shot/<split>-<tag>`
folders of tools/eval/zero_shot.sh); files are paired by name, questions by id. Prints, per file
and overall: EX before and after, the answers gained and lost, a two-sided sign test on them, and
on how many questions the retrieved examples differ. `--list` also names every changed question
with both answers.
"""
import json
import math
import os
import sys


def load(path):
    with open(path) as f:
        return {r["id"]: r for r in (json.loads(line) for line in f if line.strip())}


def sign_test(gained, lost):
    """Two-sided exact binomial test of gained against lost (p = 1/2)."""
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    before_dir, after_dir = args
    show = "--list" in sys.argv
    names = sorted(n for n in os.listdir(after_dir) if n.endswith(".details.jsonl"))
    total = {"n": 0, "before": 0, "after": 0, "gained": 0, "lost": 0, "examples": 0}
    print("| file | questions | EX before % | EX after % | gained | lost | examples differ |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    changed = []
    for name in names:
        other = os.path.join(before_dir, name)
        if not os.path.exists(other):
            print(f"(no {name} in {before_dir})", file=sys.stderr)
            continue
        a, b = load(other), load(os.path.join(after_dir, name))
        ids = [i for i in b if i in a]
        row = {"n": len(ids), "before": 0, "after": 0, "gained": 0, "lost": 0, "examples": 0}
        for i in ids:
            x, y = a[i], b[i]
            row["before"] += bool(x["correct"])
            row["after"] += bool(y["correct"])
            row["gained"] += bool(y["correct"] and not x["correct"])
            row["lost"] += bool(x["correct"] and not y["correct"])
            row["examples"] += x.get("examples") != y.get("examples")
            if x["correct"] != y["correct"] or x.get("pred") != y.get("pred"):
                changed.append((i, x, y))
        for k in total:
            total[k] += row[k]
        n = max(row["n"], 1)
        label = name.removesuffix(".details.jsonl")
        print(
            f"| {label} | {row['n']} | {100 * row['before'] / n:.1f} | {100 * row['after'] / n:.1f}"
            f" | {row['gained']} | {row['lost']} | {row['examples']} |"
        )
    n = max(total["n"], 1)
    print(
        f"| all | {total['n']} | {100 * total['before'] / n:.1f} | {100 * total['after'] / n:.1f}"
        f" | {total['gained']} | {total['lost']} | {total['examples']} |"
    )
    print(f"\nsign test, gained {total['gained']} against lost {total['lost']}: "
          f"p = {sign_test(total['gained'], total['lost']):.3f}")
    if show:
        for i, x, y in changed:
            mark = {(False, True): "+", (True, False): "-"}.get((bool(x["correct"]), bool(y["correct"])), "=")
            print(f"\n{mark} {i}\n  before: {x.get('pred')}\n  after:  {y.get('pred')}\n  gold:   {x.get('gold')}")


if __name__ == "__main__":
    main()
