#!/usr/bin/env python3
"""Prints the zero-shot table of EVALUATION.md from runs/zero_shot/<model>_<domain>.json
(written by tools/eval/zero_shot.sh): EX, valid-SQL rate, execution-error rate and mean
latency per question, per model and domain, and the pooled row per model."""
import glob
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RUNS = os.path.join(ROOT, "runs", "zero_shot")
DOMAINS = ["retail", "hr", "library", "flights", "clinic", "music"]


def main():
    by_model = {}
    for path in sorted(glob.glob(os.path.join(RUNS, "*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        model, _, domain = name.rpartition("_")
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        by_model.setdefault(model, {})[domain] = r
    print("| model | domain | questions | EX % | valid SQL % | exec. errors % | seen / unseen skeleton EX % | mean latency s |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for model, runs in by_model.items():
        tot = cor = 0
        valid = err = lat = 0.0
        for d in DOMAINS + sorted(set(runs) - set(DOMAINS)):
            r = runs.get(d)
            if r is None:
                continue
            n = r["total"]
            tot += n
            cor += r["correct"]
            valid += r["valid_sql_rate"] * n
            err += r["exec_error_rate"] * n
            lat += r.get("mean_latency_ms", 0.0) * n
            s, u = r.get("seen_skeleton"), r.get("unseen_skeleton")
            skel = "—"
            if s and u:
                skel = f"{100*s['ex']:.0f} ({s['total']}) / {100*u['ex']:.0f} ({u['total']})"
            print(f"| {model} | {d} | {n} | {100*r['ex']:.1f} | {100*r['valid_sql_rate']:.0f} | "
                  f"{100*r['exec_error_rate']:.0f} | {skel} | {r.get('mean_latency_ms', 0)/1000:.1f} |")
        if tot:
            print(f"| **{model}** | **all** | {tot} | **{100*cor/tot:.1f}** | {100*valid/tot:.0f} | "
                  f"{100*err/tot:.0f} | | {lat/tot/1000:.1f} |")


if __name__ == "__main__":
    main()
