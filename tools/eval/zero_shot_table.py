#!/usr/bin/env python3
"""Prints the zero-shot table of EVALUATION.md from runs/zero_shot/<split>/<model>_<domain>.json
(written by tools/eval/zero_shot.sh): EX, valid-SQL rate, execution-error rate and latency per
question, per model and domain, then one pooled row per model (p50/p95 over every question's
latency, from the matching .details.jsonl) and EX by difficulty.

    python3 tools/eval/zero_shot_table.py [FOLDER]     (under runs/zero_shot; default: test)
"""
import glob
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOMAINS = ["retail", "hr", "library", "flights", "clinic", "music"]
LEVELS = ["easy", "medium", "hard", "extra"]


def quantile(xs, q):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * q)] if xs else 0.0


def main():
    split = sys.argv[1] if len(sys.argv) > 1 else "test"
    runs_dir = os.path.join(ROOT, "runs", "zero_shot", split)
    by_model = {}
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        model, _, domain = name.rpartition("_")
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        lat = []
        det = path[: -len(".json")] + ".details.jsonl"
        if os.path.exists(det):
            with open(det) as f:
                lat = [json.loads(l).get("latency_ms", 0.0) for l in f if l.strip()]
        by_model.setdefault(model, {})[domain] = (r, lat)
    print(f"Runs: runs/zero_shot/{split}\n")
    print("| model | domain | questions | EX % | valid SQL % | exec. errors % | seen / unseen skeleton EX % | latency s, mean / p50 / p95 |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    pooled = {}
    for model, runs in by_model.items():
        tot = cor = 0
        valid = err = 0.0
        lats = []
        diff = {}
        for d in DOMAINS + sorted(set(runs) - set(DOMAINS)):
            if d not in runs:
                continue
            r, lat = runs[d]
            n = r["total"]
            tot += n
            cor += r["correct"]
            valid += r["valid_sql_rate"] * n
            err += r["exec_error_rate"] * n
            lats += lat
            for lvl, v in r.get("by_difficulty", {}).items():
                c, t = diff.get(lvl, (0, 0))
                diff[lvl] = (c + v["correct"], t + v["total"])
            s, u = r.get("seen_skeleton"), r.get("unseen_skeleton")
            skel = "—"
            if s and u:
                skel = f"{100*s['ex']:.0f} ({s['total']}) / {100*u['ex']:.0f} ({u['total']})"
            print(f"| {model} | {d} | {n} | {100*r['ex']:.1f} | {100*r['valid_sql_rate']:.0f} | "
                  f"{100*r['exec_error_rate']:.0f} | {skel} | "
                  f"{r.get('mean_latency_ms', 0)/1000:.1f} / {quantile(lat, .5)/1000:.1f} / {quantile(lat, .95)/1000:.1f} |")
        if tot:
            mean = sum(lats) / len(lats) if lats else 0.0
            print(f"| **{model}** | **all** | {tot} | **{100*cor/tot:.1f}** | {100*valid/tot:.0f} | "
                  f"{100*err/tot:.0f} | | {mean/1000:.1f} / {quantile(lats, .5)/1000:.1f} / {quantile(lats, .95)/1000:.1f} |")
            pooled[model] = diff
    if pooled:
        print("\nEX % by difficulty (questions):\n")
        print("| model | " + " | ".join(LEVELS) + " |")
        print("|---|" + "---:|" * len(LEVELS))
        for model, diff in pooled.items():
            cells = []
            for lvl in LEVELS:
                c, t = diff.get(lvl, (0, 0))
                cells.append(f"{100*c/t:.0f} ({t})" if t else "—")
            print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
