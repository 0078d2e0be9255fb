#!/usr/bin/env python3
"""Peer for sqlora's training benchmark (crates/sqlora-train/examples/train_bench.rs): the same
rows trained with PyTorch + PEFT.

    /work/venvs/ref/bin/python tools/bench/peft_train_bench.py --gguf MODEL.gguf \
        --batch rows.json --steps 3 [--mode checkpoint|plain] [--threads 2] [--max-mem-gb 14]

rows.json is what train_bench wrote: the token ids and answer start of every row, built exactly
like `sqlora train` builds them. Same model (transformers loads the GGUF dequantized to
float32), same LoRA (r=8, alpha 16, all seven projections of every layer, no dropout), same
optimizer step (AdamW over the LoRA parameters only, lr 1e-4, no weight decay, gradient norm
clipped at 1.0), one micro-batch of all rows per step. Rows are right-padded with an attention
mask; labels are -100 on the prompt and the padding, so the loss (mean cross-entropy) covers
only the answer tokens, as sqlora's does. The first step is an untimed warm-up.

  --mode plain       autograd keeps every layer's activations
  --mode checkpoint  model.gradient_checkpointing_enable() + enable_input_require_grads()
                     (each layer recomputed in the backward pass, as sqlora does)

Memory: the process's address space is capped at --max-mem-gb so a batch that does not fit
fails here with an allocation error (reported as "oom": true) instead of waking the kernel's
OOM killer on a shared machine. Prints one JSON object.
"""

import argparse
import json
import os
import resource
import statistics
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--batch", required=True, help="rows JSON written by train_bench")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--mode", choices=["plain", "checkpoint"], default="checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-mem-gb", type=float, default=14.0)
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first is a warm-up)")
    cap = int(args.max_mem_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.batch) as f:
        dump = json.load(f)
    rows = dump["rows"]
    pad_id = int(dump.get("pad_id", 0))
    n = len(rows)
    width = max(len(r["ids"]) for r in rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        ids = torch.tensor(r["ids"], dtype=torch.long)
        input_ids[i, : len(ids)] = ids
        mask[i, : len(ids)] = 1
        labels[i, r["answer_start"] : len(ids)] = ids[r["answer_start"] :]
    tokens = int(mask.sum())
    answer_tokens = int((labels != -100).sum())

    folder, name = os.path.split(os.path.abspath(args.gguf))
    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    base.config.use_cache = False
    if args.mode == "checkpoint":
        base.gradient_checkpointing_enable()
        base.enable_input_require_grads()
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0)
    model = get_peft_model(base, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    times, losses = [], []
    oom = None
    for _ in range(args.steps):
        try:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            times.append(time.perf_counter() - t0)
            losses.append(out.loss.detach().item())
            del out
        except (RuntimeError, MemoryError) as e:  # allocation failure under the address cap
            oom = str(e).splitlines()[0][:300]
            break
    result = {
        "engine": "peft",
        "mode": args.mode,
        "versions": {
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "peft": __import__("peft").__version__,
        },
        "attn_implementation": getattr(base.config, "_attn_implementation", None),
        "threads": args.threads,
        "rows": n,
        "tokens_per_step": tokens,
        "computed_tokens_per_step": n * width,
        "answer_tokens_per_step": answer_tokens,
        "trainable_params": sum(p.numel() for p in params),
        "max_mem_gb": args.max_mem_gb,
        "oom": oom is not None,
        "error": oom,
        "step_seconds_all": times,
        "losses": losses,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_1m": os.getloadavg()[0],
    }
    if len(times) >= 2:
        med = statistics.median(sorted(times[1:]))
        result["step_seconds"] = med
        result["tokens_per_s"] = tokens / med
    print(json.dumps(result))


if __name__ == "__main__":
    main()
