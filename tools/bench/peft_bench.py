#!/usr/bin/env python3
"""Peer for `sqlora bench generate --lora`: the same four decode modes through PyTorch + PEFT.

    /work/venvs/ref/bin/python tools/bench/peft_bench.py --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Same model (transformers loads the GGUF dequantized to float32), same threads (2), same
shapes as sqlora's bench: 8 rows of the same 32-token prompt, 64 greedy tokens per row (EOS
ignored), 8 random rank-8 adapters (alpha 16) on all seven projections with non-zero B.
Decode tokens/s = 8 * 64 / (time of 64 greedy decode steps after an untimed prefill), the
same loop as sqlora's bench (forward with the KV cache, argmax); one warm-up, median of
--repeats.

  lora_mixed_8_adapters  forward(..., adapter_names=[a0..a7])  (PEFT's mixed-batch path, the
                         one generate(..., adapter_names=...) uses)
  lora_one_adapter       set_adapter(a0), plain forward
  lora_merged            merge_adapter() (a0 folded into the weights), plain forward
  lora_base              with disable_adapter(): plain forward
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

    def rate(**kw):
        """Decode tokens/s over the 8 rows: prefill untimed, then args.decode_tokens greedy
        steps (forward of one token per row with the KV cache, argmax) timed, as sqlora's
        bench does. Median of --repeats after a warm-up."""

        def once():
            with torch.no_grad():
                out = model(input_ids=input_ids, attention_mask=mask, use_cache=True, **kw)
                pkv = out.past_key_values
                nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                am = mask
                t = time.perf_counter()
                for _ in range(args.decode_tokens):
                    am = torch.cat([am, torch.ones_like(nxt)], dim=1)
                    out = model(input_ids=nxt, attention_mask=am, past_key_values=pkv, use_cache=True, **kw)
                    pkv = out.past_key_values
                    nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
                return time.perf_counter() - t

        once()
        times = [once() for _ in range(args.repeats)]
        return 8 * args.decode_tokens / statistics.median(times)

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
