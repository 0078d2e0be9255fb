#!/usr/bin/env python3
"""Reference fixtures for the Qwen2.5-Coder GGUF files, produced by transformers (PyTorch, float32).

Run in the reference virtual environment OUTSIDE the repository (see tools/reference/README.md):

    /work/venvs/ref/bin/python tools/reference/make_qwen_fixtures.py \
        --gguf "$SQLORA_HOME/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" \
        --out tests/fixtures/reference/qwen2.5-coder-0.5b

Writes (small enough to commit):
  tokenizer_cases.json   tricky strings -> token ids (digits, contractions, CJK, emoji,
                         whitespace runs, tabs/newlines, SQL quotes, special tokens, NFC)
  chat_template.json     apply_chat_template renderings (with and without a system message)
  logits.json            per prompt: input ids, argmax, the top 64 final-position logits, and
                         the logits of every 297th vocabulary id (512 values) as a spot check
  generations.json       greedy continuations of text-to-SQL chat prompts (exactly N tokens)
  versions.json          library versions used

Tokenizer: transformers rebuilds a `gpt2` GGUF with `tokenizer.ggml.pre = qwen2` as a
Qwen2Tokenizer with Qwen2's split regex, but without the NFC normalizer of Qwen's published
tokenizer.json. The reference ids ("ids") are those of that tokenizer with NFC put back (i.e.
Qwen's own tokenizer); the ids of the unmodified transformers GGUF tokenizer are stored as well
("ids_transformers_gguf"); the two differ only on text that is not in NFC (the script checks).

Model: AutoModelForCausalLM.from_pretrained(folder, gguf_file=...) dequantizes every tensor
(Q4_K, Q5_0, Q6_K, Q8_0) to float32 with the gguf package, as sqlora does at load.

Greedy generation: argmax of the last position with a KV cache, exactly N new tokens, no EOS
stopping (the Rust test mirrors it with `GenerateParams { stop_on_eos: false, .. }`).
"""

import argparse
import copy
import json
import os
import sys
import unicodedata

import numpy as np
import torch
from tokenizers import normalizers

torch.set_num_threads(2)

TOKENIZER_CASES = [
    "12345",
    "3.14",
    "2024-01-05",
    "Order 12345 costs $1,299.99 on 2024-03-17T08:05:00Z",
    "don't",
    "WE'LL",
    "it's they're we'll I'd You've SHE'S",
    "北京欢迎你 東京 서울",
    "emoji 🙂👍🏽 🇩🇪 done",
    "  double  spaces   and\ttabs ",
    "line one\nline two\n\n  indented\r\nwindows\t\tend",
    "trailing spaces   ",
    "   ",
    "\n\n\n",
    "SELECT name FROM users WHERE city = 'O''Brien' AND note = \"x\";",
    'SELECT COUNT(*) FROM "order items" WHERE price>=10.5 GROUP BY 1 ORDER BY 2 DESC LIMIT 3;',
    "```sql\nSELECT strftime('%Y', placed_at) AS y, SUM(total_cents)/100.0 FROM orders GROUP BY y;\n```",
    "<|im_start|>user\nHow many rows?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text<|im_end|>",
    "Café naïve — Ünïcödé ß",
    "Cafe\u0301 nai\u0308ve",  # not NFC: decomposed accents
    "x=-0.001e+10 && y!=3",
]

SYSTEM_SQL = (
    "You are a SQLite expert. Given a database schema and a question, answer with one SQL "
    "query and nothing else."
)
SCHEMAS = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, joined DATE);\n"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), "
    "total_cents INTEGER, placed_at TEXT);",
    "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, manager_id INTEGER REFERENCES "
    "employees(id), salary INTEGER, department TEXT);",
    "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER, year INTEGER);\n"
    "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT, country TEXT);",
]
QUESTIONS = [
    "How many orders did customers from Berlin place in 2024?",
    "List the names of employees who earn more than their manager.",
    "Which country has the most authors with books published after 1990?",
]


def sql_messages(i, system=True):
    user = {"role": "user", "content": f"Schema:\n{SCHEMAS[i]}\n\nQuestion: {QUESTIONS[i]}"}
    return [{"role": "system", "content": SYSTEM_SQL}, user] if system else [user]


CHAT_CASES = [
    ([{"role": "user", "content": "Hello! Who are you?"}], True),
    ([{"role": "user", "content": "Hello! Who are you?"}], False),
    (sql_messages(0), True),
    (
        [
            {"role": "system", "content": "Answer in SQL."},
            {"role": "user", "content": "Count the users."},
            {"role": "assistant", "content": "SELECT COUNT(*) FROM users;"},
            {"role": "user", "content": "  And the admins?  "},
        ],
        False,
    ),
]

SPOT_STRIDE = 297
TOP_K = 64


def logits_record(ids, last):
    last = np.asarray(last, dtype=np.float32)
    top = np.argsort(-last, kind="stable")[:TOP_K]
    spot = list(range(0, last.shape[0], SPOT_STRIDE))
    return {
        "input_ids": [int(i) for i in ids],
        "argmax": int(top[0]),
        "top": [{"id": int(i), "logit": float(last[i])} for i in top],
        "spot_stride": SPOT_STRIDE,
        "spot": [float(last[i]) for i in spot],
        "vocab_size": int(last.shape[0]),
    }


@torch.no_grad()
def last_logits(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long))
    return out.logits[0, -1].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
    """Exactly n greedy tokens; no EOS stopping. Also the top-1/top-2 gap at each step."""
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=True)
    past = out.past_key_values
    logits = out.logits[0, -1]
    tokens, gaps = [], []
    for _ in range(n):
        top2 = torch.topk(logits, 2)
        nxt = int(top2.indices[0])
        tokens.append(nxt)
        gaps.append(float(top2.values[0] - top2.values[1]))
        out = model(torch.tensor([[nxt]], dtype=torch.long), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]
    return tokens, gaps


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, help="path of a Qwen2.5-Coder GGUF file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--tokenizer-only", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dump(
        os.path.join(args.out, "versions.json"),
        {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
    )
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ref = copy.deepcopy(tok.backend_tokenizer)
    ref.normalizer = normalizers.NFC()

    def ids_of(text):
        return ref.encode(text, add_special_tokens=False).ids

    cases = []
    for text in TOKENIZER_CASES:
        ids = ids_of(text)
        plain = tok.encode(text, add_special_tokens=False)
        if unicodedata.is_normalized("NFC", text):
            assert ids == plain, (text, ids, plain)
        else:
            assert ids != plain, f"expected NFC to matter for {text!r}"
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_transformers_gguf": plain,
                "decoded": ref.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": ref.decode(ids, skip_special_tokens=True),
            }
        )
    dump(
        os.path.join(args.out, "tokenizer_cases.json"),
        {
            "source": name,
            "reference": "transformers GGUF tokenizer (Qwen2 split regex, byte-level BPE) with Qwen's NFC normalizer put back",
            "bos_token": tok.bos_token,
            "eos_token": tok.eos_token,
            "pad_token": tok.pad_token,
            "vocab_size": len(tok),
            "cases": cases,
        },
    )
    renders = []
    for messages, add_gen in CHAT_CASES:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_gen)
        renders.append({"messages": messages, "add_generation_prompt": add_gen, "rendered": text, "ids": ids_of(text)})
    dump(
        os.path.join(args.out, "chat_template.json"),
        {"bos_token": tok.bos_token, "eos_token": tok.eos_token, "cases": renders},
    )
    print(f"tokenizer: {len(cases)} cases, chat: {len(renders)} renderings", file=sys.stderr)
    if args.tokenizer_only:
        return

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()

    def chat_ids(messages):
        return ids_of(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    prompts = {
        "plain_sql": ids_of("-- SQLite\nSELECT name, COUNT(*) AS n FROM orders WHERE placed_at >= '2024-01-01' GROUP BY"),
        "plain_digits": ids_of("The year 2024-01-05 plus 12345 days is"),
        "chat_default_system": chat_ids([{"role": "user", "content": "What is 12 + 30?"}]),
        "chat_sql": chat_ids(sql_messages(1)),
    }
    records = {}
    for key, ids in prompts.items():
        last = last_logits(model, ids)
        records[key] = logits_record(ids, last)
        print(f"logits {key}: {len(ids)} ids, argmax {int(np.argmax(last))}", file=sys.stderr)
    dump(os.path.join(args.out, "logits.json"), {"dtype": "f32", "prompts": records})

    gens = []
    for i, system in [(0, True), (1, False), (2, True)]:
        messages = sql_messages(i, system)
        ids = chat_ids(messages)
        tokens, gaps = greedy(model, ids, args.new_tokens)
        text = ref.decode(tokens, skip_special_tokens=False)
        gens.append({"messages": messages, "prompt_ids": ids, "generated_ids": tokens, "text": text, "top2_gaps": gaps})
        print(f"generation {i}: {text!r}", file=sys.stderr)
    dump(
        os.path.join(args.out, "generations.json"),
        {
            "procedure": f"greedy argmax, exactly {args.new_tokens} new tokens, no EOS stopping, KV cache, float32",
            "new_tokens": args.new_tokens,
            "cases": gens,
        },
    )


if __name__ == "__main__":
    main()
