#!/usr/bin/env python3
"""PEFT parity fixtures for sqlora's LoRA code (crates/sqlora-model/tests/peft.rs).

Run in the reference virtual environment (torch + transformers + peft, OUTSIDE the repository;
see tools/reference/README.md):

    /work/venvs/ref/bin/python tools/reference/make_peft_fixture.py \
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --out tests/fixtures/reference/peft

It does two things, both on SmolLM2-135M-Instruct loaded by transformers from the GGUF (f32):

1. PEFT -> sqlora. Makes a LoRA adapter with PEFT (`get_peft_model`), r=8 / alpha=16 on
   q,k,v,o,gate,up,down of layers 0, 14 and 29, `rank_pattern` {"down_proj": 4} and
   `alpha_pattern` {"o_proj": 32}; PEFT initialises A (Kaiming-uniform) and B (zeros), then B is
   redrawn from N(0, 0.05) with a fixed seed so the adapter really changes the logits. Saves it
   with `save_pretrained` to OUT/peft_made/ and writes, for each prompt, the final-position logits
   of the base model (OUT/<prompt>.base.bin) and of the PEFT model (OUT/<prompt>.peft_made.bin),
   with the input ids in OUT/prompts.json.

2. sqlora -> PEFT. If OUT/sqlora_made/ exists (written by sqlora's PEFT writer, see
   crates/sqlora-model/tests/peft.rs: `SQLORA_UPDATE_FIXTURES=1 cargo test -p sqlora-model
   --test peft`), loads it with `PeftModel.from_pretrained`, checks that every tensor in the file
   landed in a LoRA layer (no missing or unexpected keys), and writes PEFT's logits with it
   (OUT/<prompt>.sqlora_made.bin) and the check results (OUT/sqlora_made_check.json).

Logits are little-endian f32, one vocabulary-sized vector per file.

With `--base qwen2.5-coder-0.5b` it makes the Qwen fixture instead (checked by
crates/sqlora-model/tests/qwen.rs), on Qwen2.5-Coder-0.5B-Instruct loaded from its GGUF (f32):

    /work/venvs/ref/bin/python tools/reference/make_peft_fixture.py --base qwen2.5-coder-0.5b \
        --gguf "$SQLORA_HOME/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" \
        --out tests/fixtures/reference/qwen2.5-coder-0.5b/peft_lora

3. PEFT -> sqlora on qwen2. A LoRA adapter made by PEFT as a user would make one for
   `Qwen/Qwen2.5-Coder-0.5B-Instruct` (its `base_model_name_or_path`): r=8 / alpha=16 on
   q,k,v,o,gate,up,down of all 24 layers, B redrawn from N(0, QWEN_B_STD); A and B are rounded
   to float16 values and saved as float16 (`save_pretrained`, 8.8 MB instead of 17.6 MB in f32),
   so the file holds exactly the values PEFT computed with in f32. The prompts are those of the
   Qwen fixtures next to OUT (`../logits.json`, `../generations.json`, made by
   make_qwen_fixtures.py): OUT/logits.json holds, per prompt, the records of make_qwen_fixtures
   (argmax, top 64, every 297th id) of PEFT's final-position logits with the adapter, OUT/<prompt>.bin
   the full vectors of FULL_ROWS prompts, OUT/generations.json the greedy continuations with the
   adapter (same procedure as make_qwen_fixtures.py).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

torch.set_num_threads(2)

PROMPTS = {
    "sql": "<|im_start|>system\nYou are a SQLite expert. Answer with one SQL query.<|im_end|>\n"
    "<|im_start|>user\nSchema:\nCREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, year INTEGER);\n\n"
    "Question: Which books were published after the year two thousand?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "plain": "The capital of France is",
}

SEED = 1234
B_STD = 0.05

QWEN_REPO = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
QWEN_B_STD = 0.02
QWEN_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FULL_ROWS = ["plain_sql", "chat_sql"]


def write_f32(path, values):
    np.asarray(values, dtype="<f4").tofile(path)


@torch.no_grad()
def last_logits(model, ids):
    out = model(input_ids=torch.tensor([ids], dtype=torch.long))
    return out.logits[0, -1].float().numpy()


def load_base(gguf):
    from transformers import AutoModelForCausalLM

    folder, name = os.path.split(os.path.abspath(gguf))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    return model


def redraw_b(pm, std, gen):
    """B of every LoRA layer from N(0, std), so the adapter changes the logits."""
    with torch.no_grad():
        for _, module in pm.named_modules():
            if hasattr(module, "lora_B") and "default" in module.lora_B:
                w = module.lora_B["default"].weight
                w.copy_(torch.randn(w.shape, generator=gen) * std)


def versions(extra):
    import peft
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "numpy": np.__version__,
        **extra,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", choices=["smollm2", "qwen2.5-coder-0.5b"], default="smollm2")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.base == "smollm2":
        smollm2(args)
    else:
        qwen(args)


def smollm2(args):
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = args.out

    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ids = {k: tok(v, add_special_tokens=False)["input_ids"] for k, v in PROMPTS.items()}
    with open(os.path.join(out, "prompts.json"), "w") as f:
        json.dump({"prompts": PROMPTS, "input_ids": ids}, f, indent=1)

    base = load_base(args.gguf)
    base_logits = {k: last_logits(base, v) for k, v in ids.items()}
    for k, v in base_logits.items():
        write_f32(os.path.join(out, f"{k}.base.bin"), v)

    # 1. PEFT -> sqlora
    torch.manual_seed(SEED)
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        layers_to_transform=[0, 14, 29],
        rank_pattern={"down_proj": 4},
        alpha_pattern={"o_proj": 32},
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    pm = get_peft_model(base, cfg)
    redraw_b(pm, B_STD, torch.Generator().manual_seed(SEED))
    pm.eval()
    summary = {}
    for k, v in ids.items():
        lg = last_logits(pm, v)
        write_f32(os.path.join(out, f"{k}.peft_made.bin"), lg)
        summary[k] = {
            "max_abs_change_vs_base": float(np.abs(lg - base_logits[k]).max()),
            "argmax_base": int(base_logits[k].argmax()),
            "argmax_adapter": int(lg.argmax()),
        }
    pm.save_pretrained(os.path.join(out, "peft_made"))
    # PEFT also writes a model-card template; the fixture does not need it.
    card = os.path.join(out, "peft_made", "README.md")
    if os.path.exists(card):
        os.remove(card)
    print("peft_made:", json.dumps(summary))

    # 2. sqlora -> PEFT
    sq_dir = os.path.join(out, "sqlora_made")
    check = None
    if os.path.isdir(sq_dir):
        base2 = load_base(args.gguf)
        sq = PeftModel.from_pretrained(base2, sq_dir)
        sq.eval()
        file_tensors = load_file(os.path.join(sq_dir, "adapter_model.safetensors"))
        state = {k: v for k, v in sq.state_dict().items() if "lora_" in k}
        # PEFT keeps the adapter name in live keys: ...q_proj.lora_A.default.weight
        live = {k.replace(".default.", "."): v for k, v in state.items()}
        missing = sorted(set(file_tensors) - set(live))
        unexpected = sorted(set(live) - set(file_tensors))
        max_diff = max(
            float((live[k].float() - t.float()).abs().max()) for k, t in file_tensors.items() if k in live
        )
        cfg2 = sq.peft_config["default"]
        check = {
            "tensors_in_file": len(file_tensors),
            "lora_tensors_in_peft_model": len(live),
            "missing_in_peft_model": missing,
            "extra_in_peft_model": unexpected,
            "max_abs_diff_file_vs_loaded": max_diff,
            "peft_r": cfg2.r,
            "peft_lora_alpha": cfg2.lora_alpha,
            "peft_target_modules": sorted(cfg2.target_modules)
            if isinstance(cfg2.target_modules, (set, list))
            else cfg2.target_modules,
            "logits": {},
        }
        for k, v in ids.items():
            lg = last_logits(sq, v)
            write_f32(os.path.join(out, f"{k}.sqlora_made.bin"), lg)
            check["logits"][k] = {
                "max_abs_change_vs_base": float(np.abs(lg - base_logits[k]).max()),
                "argmax": int(lg.argmax()),
            }
        with open(os.path.join(out, "sqlora_made_check.json"), "w") as f:
            json.dump(check, f, indent=1)
        print("sqlora_made:", json.dumps(check))
        if missing or unexpected or max_diff != 0.0:
            raise SystemExit("the sqlora-made adapter did not load cleanly in PEFT")

    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions({"seed": SEED, "b_std": B_STD}), f, indent=1)


def qwen(args):
    """3. A PEFT-made adapter on Qwen2.5-Coder-0.5B-Instruct (see the module docs)."""
    from peft import LoraConfig, get_peft_model

    # The records and the greedy procedure of the Qwen fixtures, not a copy of them.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_qwen_fixtures import dump, greedy, logits_record

    out = args.out
    fixtures = os.path.dirname(os.path.abspath(out))
    with open(os.path.join(fixtures, "logits.json")) as f:
        base_logits = json.load(f)["prompts"]
    with open(os.path.join(fixtures, "generations.json")) as f:
        base_gens = json.load(f)

    base = load_base(args.gguf)
    # What a model loaded from the publisher's repository carries: PEFT records it as
    # base_model_name_or_path (loaded from a GGUF file it would be the file's folder).
    base.config._name_or_path = QWEN_REPO
    base.name_or_path = QWEN_REPO
    torch.manual_seed(SEED)
    cfg = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=QWEN_TARGETS,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    pm = get_peft_model(base, cfg)
    redraw_b(pm, QWEN_B_STD, torch.Generator().manual_seed(SEED))
    # float16 values, computed with in float32 and stored as float16.
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(p.half().float())
    pm.eval()

    records = {}
    for key, rec in base_logits.items():
        ids = rec["input_ids"]
        lg = last_logits(pm, ids)
        with pm.disable_adapter():
            lg_base = last_logits(pm, ids)
        r = logits_record(ids, lg)
        r["base_argmax"] = int(lg_base.argmax())
        r["max_abs_change_vs_base"] = float(np.abs(lg - lg_base).max())
        # The base model here is the fixture's base model (same weights, same library).
        r["base_top_diff_vs_fixture"] = float(
            max(abs(lg_base[t["id"]] - t["logit"]) for t in rec["top"])
        )
        records[key] = r
        if key in FULL_ROWS:
            write_f32(os.path.join(out, f"{key}.bin"), lg)
        print(
            f"logits {key}: argmax {r['argmax']} (base {r['base_argmax']}), adapter moves logits by "
            f"up to {r['max_abs_change_vs_base']:.3f}",
            file=sys.stderr,
        )
    dump(
        os.path.join(out, "logits.json"),
        {"dtype": "f32", "full_rows": FULL_ROWS, "prompts": records},
    )

    n = base_gens["new_tokens"]
    gens = []
    for case in base_gens["cases"]:
        tokens, gaps = greedy(pm, case["prompt_ids"], n)
        gens.append(
            {
                "messages": case["messages"],
                "prompt_ids": case["prompt_ids"],
                "generated_ids": tokens,
                "base_generated_ids": case["generated_ids"],
                "top2_gaps": gaps,
            }
        )
        print(f"generation: {tokens} (smallest top-1/top-2 gap {min(gaps):.3f})", file=sys.stderr)
    dump(
        os.path.join(out, "generations.json"),
        {"procedure": base_gens["procedure"], "new_tokens": n, "cases": gens},
    )

    with torch.no_grad():
        for n_, module in pm.named_modules():
            if hasattr(module, "lora_A") and "default" in module.lora_A:
                module.lora_A["default"].half()
                module.lora_B["default"].half()
    pm.peft_config["default"].base_model_name_or_path = QWEN_REPO
    # No embedding layers are adapted; "auto" would look the repository id up online.
    pm.save_pretrained(out, save_embedding_layers=False)
    card = os.path.join(out, "README.md")
    if os.path.exists(card):
        os.remove(card)
    with open(os.path.join(out, "adapter_config.json")) as f:
        saved = json.load(f)
    assert saved["base_model_name_or_path"] == QWEN_REPO, saved["base_model_name_or_path"]
    dump(os.path.join(out, "versions.json"), versions({"seed": SEED, "b_std": QWEN_B_STD}))


if __name__ == "__main__":
    main()
