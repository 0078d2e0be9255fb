#!/usr/bin/env python3
"""How closely llama.cpp (quantized kernels) agrees with the transformers (float32) fixtures.

Run in the llama-cpp-python venv AFTER make_fixtures.py (see tools/reference/README.md):

    /work/venvs/llama/bin/python tools/reference/llamacpp_agreement.py \
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --fixtures tests/fixtures/reference

Reads tokenizer_cases.json, logits/*.json+.bin and generations.json, runs llama.cpp on the SAME
token ids (n_threads=2), and writes llamacpp_agreement.json:
  tokenizer:   llama.cpp's ids for each tricky string vs the fixture ids
  logits:      max/mean |llama.cpp - transformers| on the final-position logits, argmax
               agreement, top-10 overlap
  generations: llama.cpp's greedy 64 tokens (same procedure: argmax, no EOS stop) and how many
               leading tokens equal transformers'
"""

import argparse
import glob
import json
import os

import llama_cpp
import numpy as np


def last_logits(llm, n_vocab):
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32).copy()


def run_ids(llm, ids, n_vocab):
    llm.reset()
    llm.eval(ids)
    return last_logits(llm, n_vocab)


def greedy(llm, ids, n, n_vocab):
    logits = run_ids(llm, ids, n_vocab)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        llm.eval([nxt])
        logits = last_logits(llm, n_vocab)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--fixtures", default="tests/fixtures/reference")
    args = ap.parse_args()
    fx = args.fixtures

    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=2048, n_batch=512, n_threads=2, n_threads_batch=2, verbose=False)
    n_vocab = llm.n_vocab()
    report = {"llama_cpp_python": llama_cpp.__version__, "n_threads": 2}

    cases = json.load(open(os.path.join(fx, "tokenizer_cases.json"), encoding="utf-8"))["cases"]
    tok = []
    for c in cases:
        ids = llm.tokenize(c["text"].encode("utf-8"), add_bos=False, special=True)
        tok.append({"text": c["text"], "equal": ids == c["ids"], "llamacpp_ids": ids})
    report["tokenizer"] = {"cases": len(tok), "equal": sum(t["equal"] for t in tok), "details": tok}

    logits = []
    for path in sorted(glob.glob(os.path.join(fx, "logits", "*.json"))):
        meta = json.load(open(path))
        ref = np.fromfile(path[:-5] + ".bin", dtype="<f4")
        got = run_ids(llm, meta["input_ids"], n_vocab)
        diff = np.abs(got - ref)
        top_ref = set(np.argsort(-ref)[:10].tolist())
        top_got = set(np.argsort(-got)[:10].tolist())
        logits.append(
            {
                "name": os.path.basename(path)[:-5],
                "n_ids": len(meta["input_ids"]),
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "argmax_transformers": int(np.argmax(ref)),
                "argmax_llamacpp": int(np.argmax(got)),
                "argmax_agree": bool(np.argmax(ref) == np.argmax(got)),
                "top10_overlap": len(top_ref & top_got),
            }
        )
    report["logits"] = logits

    gens = json.load(open(os.path.join(fx, "generations.json"), encoding="utf-8"))
    n = gens["new_tokens"]
    out = []
    for c in gens["cases"]:
        got = greedy(llm, c["prompt_ids"], n, n_vocab)
        ref = c["generated_ids"]
        agree = 0
        while agree < len(ref) and got[agree] == ref[agree]:
            agree += 1
        gap = c["top2_gaps"][agree] if agree < len(ref) else None
        out.append(
            {
                "prompt_tokens": len(c["prompt_ids"]),
                "agreeing_prefix": agree,
                "of": len(ref),
                "transformers_top2_gap_at_divergence": gap,
                "llamacpp_ids": got,
                "llamacpp_text": llm.detokenize(got, special=True).decode("utf-8", errors="replace"),
            }
        )
    report["generations"] = out
    with open(os.path.join(fx, "llamacpp_agreement.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
        f.write("\n")
    summary = {
        "tokenizer_equal": f"{report['tokenizer']['equal']}/{len(tok)}",
        "logits": [(l["name"], round(l["max_abs_diff"], 4), l["argmax_agree"], l["top10_overlap"]) for l in logits],
        "generation_prefix": [(g["agreeing_prefix"], g["of"]) for g in out],
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
