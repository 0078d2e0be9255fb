#!/usr/bin/env python3
"""Peer for `sqlora bench generate --lora`: the same four decode modes through PyTorch + PEFT.

    /work/venvs/ref/bin/python tools/bench/peft_bench.py --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Same model (transformers loads the GGUF dequantized to float32), same threads (2), same
shapes as sqlora's bench: 8 rows of the same 32-token prompt, 64 greedy tokens per row (EOS
ignored), 8 random rank-8 adapters (alpha 16) on all seven projections with non-zero B.
Decode tokens/s = 8 * 64 / (t(1 + 64 tokens) - t(1 token)), one warm-up, median of --repeats.

  lora_mixed_8_adapters  generate(..., adapter_names=[a0..a7])  (PEFT's mixed-batch path)
  lora_one_adapter       set_adapter(a0), plain generate
  lora_merged            merge_adapter() (a0 folded into the weights), plain generate
  lora_base              with disable_adapter(): plain generate
Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

FILLER = (
    "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES "
    "customers(customer_id), order_date TEXT, total REAL);\n"
)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    base.eval()
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0)
    model = get_peft_model(base, cfg, adapter_name="a0")
    for i in range(1, 8):
        model.add_adapter(f"a{i}", cfg)
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.1)
    model.eval()

    ids = []
    while len(ids) < 32:
        ids += tok(FILLER, add_special_tokens=False)["input_ids"]
    ids = ids[:32]
    input_ids = torch.tensor([ids] * 8)
    mask = torch.ones_like(input_ids)

    def run(n, **kw):
        def once():
            with torch.no_grad():
                model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id or 0,
                    **kw,
                )

        once()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            once()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def rate(**kw):
        t1 = run(1, **kw)
        tn = run(1 + args.decode_tokens, **kw)
        # None when noise swamps the difference (a run with too few tokens on a busy machine).
        return 8 * args.decode_tokens / (tn - t1) if tn > t1 else None

    results = []
    results.append(
        {"what": "lora_mixed_8_adapters", "batch": 8, "tokens_per_s": rate(adapter_names=[f"a{i}" for i in range(8)])}
    )
    model.set_adapter("a0")
    results.append({"what": "lora_one_adapter", "batch": 8, "tokens_per_s": rate()})
    model.merge_adapter()
    results.append({"what": "lora_merged", "batch": 8, "tokens_per_s": rate()})
    model.unmerge_adapter()
    with model.disable_adapter():
        results.append({"what": "lora_base", "batch": 8, "tokens_per_s": rate()})
    print(
        json.dumps(
            {
                "engine": "peft",
                "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__},
                "threads": args.threads,
                "loadavg_1m": os.getloadavg()[0],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
