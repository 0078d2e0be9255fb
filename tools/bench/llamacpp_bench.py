#!/usr/bin/env python3
"""Speed peer: llama.cpp (llama-cpp-python) on the default model, n_threads=2.

    /work/venvs/llama/bin/python tools/bench/llamacpp_bench.py --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Measures, with one warm-up run and the median of --repeats runs:
  prefill_tok_s      a ~400-token prompt evaluated in one call (n_batch=512)
  decode_tok_s_b1    greedy decoding, batch 1, --decode-tokens tokens after that prompt
  decode_tok_s_b8    8 sequences decoded together: one llama_decode per step with 8 tokens
                     (one per sequence, each its own seq_id), through llama_cpp's low-level API;
                     tokens/s counts all 8 rows
Prints one JSON object, with every run and the 1-minute load average.

Waiting policy: ggml's OpenMP workers spin while they wait by default; when other processes
compete for the 2 cores that collapses throughput (decode fell from ~85 to 1-12 tokens/s here
while cargo builds ran, with huge run-to-run spread). The script therefore sets
OMP_WAIT_POLICY=PASSIVE unless --spin is given (or OMP_WAIT_POLICY is already set): slightly
slower on an idle machine, stable on a busy one. The policy used is in the output. Measure on an
idle machine when you can, and say which policy.
"""

import argparse
import json
import os
import statistics
import time


def _wait_policy():
    # Must be set before llama_cpp (and with it the OpenMP runtime) is loaded.
    import sys

    policy = "ACTIVE" if "--spin" in sys.argv else "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", policy)
    return os.environ["OMP_WAIT_POLICY"]


OMP_WAIT_POLICY = _wait_policy()

import llama_cpp  # noqa: E402
import numpy as np  # noqa: E402

SCHEMA = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, city TEXT, country TEXT, joined DATE);\n"
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price_cents INTEGER, in_stock INTEGER);\n"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), placed_at TEXT, status TEXT);\n"
    "CREATE TABLE order_items (order_id INTEGER REFERENCES orders(id), product_id INTEGER REFERENCES products(id), quantity INTEGER, unit_price_cents INTEGER);\n"
    "CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, customer_id INTEGER, stars INTEGER, body TEXT, created_at TEXT);\n"
)


def prompt_ids(llm, n):
    text = (
        "<|im_start|>system\nYou are a SQLite expert. Answer with one SQL query.<|im_end|>\n<|im_start|>user\nSchema:\n"
        + SCHEMA * 8
    )
    ids = llm.tokenize(text.encode(), add_bos=False, special=True)[: n - 20]
    tail = llm.tokenize(
        "\nQuestion: Which city has the most customers?<|im_end|>\n<|im_start|>assistant\n".encode(),
        add_bos=False,
        special=True,
    )
    return ids + tail


def last_logits(ctx, n_vocab, i=-1):
    ptr = llama_cpp.llama_get_logits_ith(ctx, i)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,))


def clear(ctx):
    mem = llama_cpp.llama_get_memory(ctx)
    llama_cpp.llama_memory_clear(mem, True)


def bench_b1(llm, ids, n_decode, n_vocab):
    llm.reset()
    clear(llm._ctx.ctx)
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    for _ in range(n_decode):
        nxt = int(np.argmax(last_logits(llm._ctx.ctx, n_vocab)))
        llm.eval([nxt])
    t2 = time.perf_counter()
    return len(ids) / (t1 - t0), n_decode / (t2 - t1)


def fill(batch, tokens, positions, seqs, want_logits):
    batch.n_tokens = len(tokens)
    for i, (t, p, s, w) in enumerate(zip(tokens, positions, seqs, want_logits)):
        batch.token[i] = t
        batch.pos[i] = p
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = s
        batch.logits[i] = w


def bench_b8(model, ids, n_decode, n_vocab, rows=8):
    """Prefill `rows` sequences (the same prompt with a different last token), then decode them
    together, one token per sequence per llama_decode call. Returns decode tokens/s (all rows)."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = rows * (len(ids) + n_decode + 8)
    params.n_batch = 512
    params.n_ubatch = 512
    params.n_seq_max = rows
    params.n_threads = 2
    params.n_threads_batch = 2
    ctx = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(512, 0, rows)
    try:
        # prefill each sequence on its own (not timed)
        for s in range(rows):
            seq = ids[:-1] + [ids[-1] + s]
            for start in range(0, len(seq), 512):
                chunk = seq[start : start + 512]
                fill(batch, chunk, range(start, start + len(chunk)), [s] * len(chunk), [False] * (len(chunk) - 1) + [start + len(chunk) == len(seq)])
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed in prefill")
        # Every row continues from the prompt's last token; the speed does not depend on which.
        nxt = [ids[-1]] * rows
        pos = len(ids)
        t0 = time.perf_counter()
        for _ in range(n_decode):
            fill(batch, nxt, [pos] * rows, range(rows), [True] * rows)
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed in decode")
            nxt = [int(np.argmax(last_logits(ctx, n_vocab, i))) for i in range(rows)]
            pos += 1
        t1 = time.perf_counter()
        return rows * n_decode / (t1 - t0)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=400)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spin", action="store_true", help="keep OpenMP's spinning wait (OMP_WAIT_POLICY=ACTIVE)")
    args = ap.parse_args()

    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=2048, n_batch=512, n_threads=2, n_threads_batch=2, verbose=False)
    n_vocab = llm.n_vocab()
    ids = prompt_ids(llm, args.prompt_tokens)

    bench_b1(llm, ids, 8, n_vocab)  # warm-up
    runs = [bench_b1(llm, ids, args.decode_tokens, n_vocab) for _ in range(args.repeats)]
    bench_b8(llm._model.model, ids, 4, n_vocab)  # warm-up
    b8 = [bench_b8(llm._model.model, ids, args.decode_tokens, n_vocab) for _ in range(args.repeats)]
    print(
        json.dumps(
            {
                "peer": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
                "model": args.gguf.rsplit("/", 1)[-1],
                "n_threads": 2,
                "omp_wait_policy": OMP_WAIT_POLICY,
                "prompt_tokens": len(ids),
                "decode_tokens": args.decode_tokens,
                "repeats": args.repeats,
                "prefill_tok_s": round(statistics.median(r[0] for r in runs), 1),
                "decode_tok_s_b1": round(statistics.median(r[1] for r in runs), 1),
                "decode_tok_s_b8": round(statistics.median(b8), 1),
                "runs": {
                    "prefill_tok_s": [round(r[0], 1) for r in runs],
                    "decode_tok_s_b1": [round(r[1], 1) for r in runs],
                    "decode_tok_s_b8": [round(x, 1) for x in b8],
                },
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
