#!/usr/bin/env python3
"""Prints the ablation table of EVALUATION.md: one row per model and decoding configuration,
pooled over the domains found in runs/zero_shot/<split>-ablation-<config>/ (written by
tools/eval/ablation.sh): questions, EX, valid-SQL rate, execution-error rate, p50/p95 latency
per question (machine time per question: a batch's wall time shared by its rows, or a voted
question's whole beam search), and EX per domain.

    python3 tools/eval/ablation_table.py SPLIT CONFIG...
"""
import glob
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOMAINS = ["retail", "hr", "library", "flights", "clinic", "music"]


def quantile(xs, q):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * q)] if xs else 0.0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    split, configs = sys.argv[1], sys.argv[2:]
    rows = {}
    for c in configs:
        folder = os.path.join(ROOT, "runs", "zero_shot", f"{split}-ablation-{c}")
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            model, _, domain = os.path.basename(path)[: -len(".json")].rpartition("_")
            try:
                with open(path) as f:
                    r = json.load(f)
            except ValueError:
                continue  # still running
            det = path[: -len(".json")] + ".details.jsonl"
            lat = []
            if os.path.exists(det):
                with open(det) as f:
                    lat = [json.loads(l).get("latency_ms", 0.0) for l in f if l.strip()]
            rows.setdefault((model, c), {})[domain] = (r, lat)
    doms = [d for d in DOMAINS if any(d in v for v in rows.values())]
    print(f"Split: {split}\n")
    print("| model | decoding | questions | EX % | valid SQL % | exec. errors % | p50 / p95 s | "
          + " | ".join(doms) + " |")
    print("|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(doms))
    for model in sorted({m for m, _ in rows}):
        for c in configs:
            runs = rows.get((model, c))
            if not runs:
                continue
            tot = cor = 0
            valid = err = 0.0
            lats = []
            per = []
            for d in doms:
                if d not in runs:
                    per.append("—")
                    continue
                r, lat = runs[d]
                n = r["total"]
                tot += n
                cor += r["correct"]
                valid += r["valid_sql_rate"] * n
                err += r["exec_error_rate"] * n
                lats += lat
                per.append(f"{100*r['ex']:.0f}")
            print(f"| {model} | {c} | {tot} | **{100*cor/tot:.1f}** | {100*valid/tot:.0f} | "
                  f"{100*err/tot:.0f} | {quantile(lats, .5)/1000:.1f} / {quantile(lats, .95)/1000:.1f} | "
                  + " | ".join(per) + " |")


if __name__ == "__main__":
    main()
