#!/usr/bin/env python3
"""Prints the EVALUATION.md tables from what the runs wrote: $ADAPTERS/<domain>/sqlora_meta.json (default
adapters/smollm2-135m-instruct)
(training time, tokens/s, dev and test EX of each domain adapter; the general adapter's test
EX per database) and runs/eval/*.json (the
`sqlora eval --json` objects written by tools/train/evaluate_all.sh). Standard library only.

    python3 tools/train/evaluation_table.py > /tmp/tables.md
"""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADAPTERS = os.path.join(ROOT, os.environ.get("ADAPTERS", "adapters/smollm2-135m-instruct"))
DOMAINS = ["retail", "hr", "library", "flights", "clinic", "music"]
# Adapters that are not one domain's: the DyLoRA run of retail and the general adapter.
EXTRA = ["retail-dylora", "general"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ex(name, d):
    r = load(os.path.join(ROOT, "runs", "eval", f"{name}_{d}.json"))
    if r is None:
        return None, None
    return 100.0 * r["ex"], r.get("questions") or r.get("total")


def fmt(x):
    return "—" if x is None else f"{x:.1f}"


def main():
    print("| domain | questions | base model EX % | domain adapter EX % | general adapter EX % | dev EX % (kept step) | training s | trained tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    sums = {"base": [], "domain": [], "general": []}
    for d in DOMAINS:
        meta = load(os.path.join(ADAPTERS, d, "sqlora_meta.json"))
        base, n = ex("base", d)
        dom, n2 = ex("domain", d)
        if dom is None and meta and meta.get("test_ex") is not None:
            dom, n2 = 100.0 * meta["test_ex"], meta.get("test_questions")
        gen, _ = ex("general", d)
        gmeta = load(os.path.join(ADAPTERS, "general", "sqlora_meta.json"))
        if gen is None and gmeta and d in (gmeta.get("test_ex_by_database") or {}):
            gen = 100.0 * gmeta["test_ex_by_database"][d]
        dev = None
        if meta and meta.get("dev_ex"):
            kept = meta.get("kept_step")
            dev = next((100.0 * s for st, s in meta["dev_ex"] if st == kept), None)
        secs = meta.get("train_seconds") if meta else None
        tps = meta.get("tokens_per_s") if meta else None
        for k, v in (("base", base), ("domain", dom), ("general", gen)):
            if v is not None:
                sums[k].append(v)
        print(
            f"| {d} | {n or n2 or '—'} | {fmt(base)} | {fmt(dom)} | {fmt(gen)} | "
            f"{fmt(dev)} ({meta.get('kept_step') if meta else '—'}) | "
            f"{fmt(secs)} | {fmt(tps)} |"
        )
    mean = {k: (sum(v) / len(v) if v else None) for k, v in sums.items()}
    print(f"| **mean** | | {fmt(mean['base'])} | {fmt(mean['domain'])} | {fmt(mean['general'])} | | | |")
    print()
    print("| domain | rank 1 | rank 2 | rank 4 | rank 8 |")
    print("|---|---|---|---|---|")
    for d in DOMAINS:
        row = [ex(f"rank{r}", d)[0] for r in (1, 2, 4)]
        if all(v is None for v in row):
            continue
        full = ex("rank8", d)[0]
        print(f"| {d} | " + " | ".join(fmt(v) for v in row + [full]) + " |")
    print()
    print("| domain | model | seen-skeleton questions | EX % on them | unseen-skeleton questions | EX % on them |")
    print("|---|---|---|---|---|---|")
    for d in DOMAINS:
        for name in ("base", "domain", "general"):
            r = load(os.path.join(ROOT, "runs", "eval", f"{name}_{d}.json"))
            if not r or not r.get("seen_skeleton"):
                continue
            seen, unseen = r["seen_skeleton"], r["unseen_skeleton"] or {}
            print(
                f"| {d} | {name} | {seen.get('total', 0)} | {fmt(100.0 * seen.get('ex', 0))} | "
                f"{unseen.get('total', 0)} | {fmt(100.0 * unseen.get('ex', 0))} |"
            )
    print()
    print("| domain | optimizer steps × rows | epochs | wall time (s) | trained tokens/s (prompt included) | final training loss | eval loss (last) | dev EX % by step |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for d in DOMAINS + EXTRA:
        meta = load(os.path.join(ADAPTERS, d, "sqlora_meta.json"))
        if not meta:
            continue
        cfg = meta.get("config", {})
        rows = cfg.get("micro_batch", 0) * cfg.get("grad_accum", 1)
        steps = meta.get("steps", 0)
        epochs = steps * rows / meta["examples"] if meta.get("examples") else None
        eval_loss = None
        mpath = os.path.join(ADAPTERS, d, "metrics.jsonl")
        if os.path.isfile(mpath):
            for line in open(mpath):
                r = json.loads(line)
                if "eval_loss" in r:
                    eval_loss = r["eval_loss"]
        dev = ", ".join(f"{st}: {100.0 * v:.1f}" for st, v in meta.get("dev_ex") or [])
        print(
            f"| {d} | {steps} × {rows} | {fmt(epochs)} | {fmt(meta.get('train_seconds'))} | "
            f"{fmt(meta.get('tokens_per_s'))} | {meta.get('final_loss', 0):.2f} | "
            f"{'—' if eval_loss is None else f'{eval_loss:.2f}'} | {dev or '—'} |"
        )
    print()
    print("| adapter | files (bytes) | base model file (bytes) | ratio |")
    print("|---|---|---|---|")
    base_size = None
    for cand in [os.environ.get("SQLORA_MODEL", "")]:
        if cand and os.path.isfile(cand):
            base_size = os.path.getsize(cand)
    for d in DOMAINS + EXTRA:
        p = os.path.join(ADAPTERS, d, "adapter_model.safetensors")
        if os.path.isfile(p):
            size = os.path.getsize(p)
            ratio = f"{100.0 * size / base_size:.2f} %" if base_size else "—"
            print(f"| {d} | {size} | {base_size or '—'} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
