#!/usr/bin/env python3
"""Reference fixtures for sqlora-model's parity tests, produced by transformers (PyTorch, float32).

Run in a virtual environment OUTSIDE the repository (see tools/reference/README.md):

    /work/venvs/ref/bin/python tools/reference/make_fixtures.py \
        --gguf /path/to/SmolLM2-135M-Instruct.Q4_1.gguf --out tests/fixtures/reference

Writes (all small enough to commit):
  tokenizer_cases.json        tricky strings -> token ids (see "Tokenizer" below)
  chat_template.json          the GGUF's chat template and apply_chat_template renderings
  logits/<name>.json + .bin   input ids and final-position logits (49152 little-endian f32)
  generations.json            greedy 64-token continuations of text-to-SQL chat prompts
  tiny-llama/, tiny-qwen2/    random small HF models (safetensors, f32) + logits for 2 inputs

Tokenizer: transformers builds the tokenizer of a `tokenizer.ggml.model = gpt2` GGUF as a plain
GPT2Tokenizer and ignores `tokenizer.ggml.pre = smollm`, i.e. it does not put back the
Digits(individual_digits=True) step of SmolLM2's own tokenizer.json (llama.cpp's `smollm`
pre-tokenizer does split digits). The reference ids ("ids") therefore come from the transformers
tokenizer with SmolLM2's published pre-tokenizer put back; the ids of the unmodified transformers
GGUF tokenizer are stored too ("ids_transformers_gguf_default"). For this vocabulary the two agree
on every case (it has no multi-digit tokens), and tools/reference/llamacpp_agreement.py checks
"ids" against llama.cpp's tokenizer as a third opinion.

Greedy generation: a plain loop (argmax of the last position, KV cache, exactly 64 new tokens,
no stopping on EOS: if EOS is the argmax it is emitted and generation continues). The Rust test
mirrors this with `GenerateParams { max_new_tokens: 64, temperature: 0.0, stop_on_eos: false }`.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from tokenizers import pre_tokenizers

torch.set_num_threads(2)

TOKENIZER_CASES = [
    "SELECT name FROM users WHERE city = 'O''Brien' AND note = \"x\";",
    "2024-03-17",
    "Order 12345 costs $1,299.99 on 2024-03-17T08:05:00Z",
    "  double  spaces   and\ttabs ",
    "line one\nline two\n\n  indented\r\nwindows",
    "<|im_start|>user\nHow many rows?<|im_end|>\n<|im_start|>assistant\n",
    "Café naïve — 東京 🙂 Ünïcödé ß",
    'SELECT COUNT(*) FROM "order items" WHERE price>=10.5 GROUP BY 1 ORDER BY 2 DESC LIMIT 3;',
    "it's they're we'll I'd You've",
    "<|endoftext|>text<|im_end|><repo_name>x",
    "```sql\nSELECT 1;\n```",
    "trailing spaces   ",
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


def sql_messages(i):
    return [
        {"role": "system", "content": SYSTEM_SQL},
        {"role": "user", "content": f"Schema:\n{SCHEMAS[i]}\n\nQuestion: {QUESTIONS[i]}"},
    ]


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


def write_f32(path, values):
    arr = np.asarray(values, dtype="<f4")
    arr.tofile(path)


def logits_record(ids, last):
    last = np.asarray(last, dtype=np.float32)
    top = np.argsort(-last, kind="stable")[:10]
    return {
        "input_ids": [int(i) for i in ids],
        "argmax": int(top[0]),
        "top10": [{"id": int(i), "logit": float(last[i])} for i in top],
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


def smollm_reference_tokenizer(tok):
    """The transformers GGUF tokenizer with SmolLM2's published pre-tokenizer put back."""
    import copy

    backend = copy.deepcopy(tok.backend_tokenizer)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    return backend


def smollm(args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ref = smollm_reference_tokenizer(tok)
    out = args.out

    def ids_of(text):
        return ref.encode(text, add_special_tokens=False).ids

    cases = []
    for text in TOKENIZER_CASES:
        ids = ids_of(text)
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_transformers_gguf_default": tok.encode(text, add_special_tokens=False),
                "decoded": ref.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": ref.decode(ids, skip_special_tokens=True),
            }
        )
    meta = {
        "source": os.path.basename(args.gguf),
        "reference": "transformers GGUF tokenizer with pre_tokenizer = Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]",
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "vocab_size": len(tok),
        "cases": cases,
    }
    dump(os.path.join(out, "tokenizer_cases.json"), meta)

    template = tok.chat_template
    renders = []
    for messages, add_gen in CHAT_CASES:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_gen)
        renders.append({"messages": messages, "add_generation_prompt": add_gen, "rendered": text})
    dump(
        os.path.join(out, "chat_template.json"),
        {"template": template, "bos_token": tok.bos_token, "eos_token": tok.eos_token, "cases": renders},
    )

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()

    def chat_ids(messages):
        return ids_of(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    prompts = {
        "plain_capital": ids_of("The capital of France is"),
        "plain_sql": ids_of("-- SQLite\nSELECT name, COUNT(*) AS n FROM orders WHERE placed_at >= '2024-01-01' GROUP BY"),
        "chat_hello": chat_ids([{"role": "user", "content": "What is 12 + 30?"}]),
        "chat_sql": chat_ids(sql_messages(1)),
    }
    os.makedirs(os.path.join(out, "logits"), exist_ok=True)
    for key, ids in prompts.items():
        last = last_logits(model, ids)
        write_f32(os.path.join(out, "logits", f"{key}.bin"), last)
        dump(os.path.join(out, "logits", f"{key}.json"), logits_record(ids, last))
        print(f"logits {key}: {len(ids)} ids, argmax {int(np.argmax(last))}", file=sys.stderr)

    gens = []
    for i in range(len(QUESTIONS)):
        messages = sql_messages(i)
        ids = chat_ids(messages)
        tokens, gaps = greedy(model, ids, args.new_tokens)
        gens.append(
            {
                "messages": messages,
                "prompt_ids": ids,
                "generated_ids": tokens,
                "text": ref.decode(tokens, skip_special_tokens=False),
                "top2_gaps": gaps,
            }
        )
        print(f"generation {i}: {ref.decode(tokens, skip_special_tokens=False)!r}", file=sys.stderr)
    dump(
        os.path.join(out, "generations.json"),
        {
            "procedure": f"greedy argmax, exactly {args.new_tokens} new tokens, no EOS stopping, KV cache, float32",
            "new_tokens": args.new_tokens,
            "cases": gens,
        },
    )


def randomise(model, seed):
    """Replace every parameter (biases and norm weights included) with seeded noise so that a
    loader that drops or transposes any tensor shows up in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def tiny_tokenizer(vocab_size, folder):
    """A small byte-level BPE tokenizer (trained on a few SQL lines) + ChatML tokenizer_config."""
    from tokenizers import Tokenizer, decoders, models, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [f"SELECT {c} FROM {t} WHERE {c} = {n};" for c in ("id", "name", "city", "total") for t in ("users", "orders", "items") for n in range(5)]
    tk.train_from_iterator(corpus, trainer)
    tk.save(os.path.join(folder, "tokenizer.json"))
    chatml = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    dump(
        os.path.join(folder, "tokenizer_config.json"),
        {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": chatml},
    )
    return tk.get_vocab_size()


def tiny(args, kind):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if kind == "llama":
        vocab = 320
        cfg = LlamaConfig(vocab_size=vocab, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False, **common)
        cls, seed = LlamaForCausalLM, 1234
    else:
        vocab = 512
        cfg = Qwen2Config(vocab_size=vocab, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False, **common)
        cls, seed = Qwen2ForCausalLM, 4321
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32)
    randomise(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    folder = os.path.join(args.out, f"tiny-{kind}")
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    # transformers >= 5 writes rope_theta only inside "rope_parameters"; configs written by
    # transformers 4.x (most folders in the wild) have it at the top level. tiny-qwen2 keeps
    # transformers 5's layout as written, tiny-llama gets the 4.x top-level key too, so the
    # loader is checked on both.
    cfg_path = os.path.join(folder, "config.json")
    with open(cfg_path, encoding="utf-8") as f:
        saved = json.load(f)
    if kind == "llama":
        saved["rope_theta"] = cfg.rope_parameters["rope_theta"] if hasattr(cfg, "rope_parameters") else cfg.rope_theta
    dump(cfg_path, saved)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    tiny_tokenizer(min(vocab, 300), folder)

    g = torch.Generator().manual_seed(seed + 1)
    inputs = [
        torch.randint(0, vocab, (7,), generator=g).tolist(),
        [1] + torch.randint(3, vocab, (12,), generator=g).tolist(),
    ]
    cases = []
    for n, ids in enumerate(inputs):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        write_f32(os.path.join(folder, f"logits_{n}.bin"), logits)  # [len(ids), vocab] row-major
        rec = logits_record(ids, logits[-1])
        rec["bin"] = f"logits_{n}.bin"
        rec["shape"] = [len(ids), vocab]
        cases.append(rec)
    dump(os.path.join(folder, "reference_logits.json"), {"dtype": "f32", "cases": cases})
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"tiny-{kind}: {size} bytes", file=sys.stderr)


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default="tests/fixtures/reference")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--only", choices=["smollm", "tiny"], help="produce only one part")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import transformers

    dump(
        os.path.join(args.out, "versions.json"),
        {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
    )
    if args.only in (None, "tiny"):
        tiny(args, "llama")
        tiny(args, "qwen2")
    if args.only in (None, "smollm"):
        smollm(args)


if __name__ == "__main__":
    main()
