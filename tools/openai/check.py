#!/usr/bin/env python3
"""Drives sqlora's OpenAI-compatible endpoints with the official `openai` client: models,
completions and chat (plain and streamed), seeded sampling, stop strings, max_tokens, and the
errors a client sees for an unknown model and for unsupported or out-of-range fields.
Exits non-zero with a message on the first failed check.

    python check.py --base-url http://127.0.0.1:PORT/v1 --model NAME
"""
import argparse
import sys

import openai


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    c = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=120)

    ids = [m.id for m in c.models.list().data]
    check(a.model in ids, f"models.list names {a.model} ({ids})")

    prompt = "How many customers are there ?"
    r = c.completions.create(model=a.model, prompt=prompt, max_tokens=12)
    text = r.choices[0].text
    check(r.object == "text_completion" and r.usage.completion_tokens >= 1,
          "completions.create answers with usage")
    check(r.usage.completion_tokens <= 12, "max_tokens is a limit")
    streamed = "".join(ch.choices[0].text for ch in
                       c.completions.create(model=a.model, prompt=prompt, max_tokens=12, stream=True))
    check(streamed == text, "a streamed completion equals the plain one")

    def sample(seed):
        return c.completions.create(model=a.model, prompt=prompt, max_tokens=16,
                                    temperature=1.5, top_p=0.95, seed=seed).choices[0].text
    s1 = sample(7)
    check(sample(7) == s1, "the same seed gives the same sample")
    check(any(sample(s) != s1 for s in range(8, 13)), "other seeds give other samples")

    msgs = [{"role": "user", "content": "Say something."}]
    chat = c.chat.completions.create(model=a.model, messages=msgs, max_tokens=10)
    content = chat.choices[0].message.content
    check(chat.choices[0].message.role == "assistant", "chat.completions.create answers")
    chunks = c.chat.completions.create(model=a.model, messages=msgs, max_tokens=10, stream=True)
    joined = "".join((ch.choices[0].delta.content or "") for ch in chunks)
    check(joined == content, "a streamed chat equals the plain one")
    seeded = [c.chat.completions.create(model=a.model, messages=msgs, max_tokens=10,
                                        temperature=1.0, seed=3).choices[0].message.content
              for _ in range(2)]
    check(seeded[0] == seeded[1], "a seeded chat sample repeats")

    if len(text) > 2:
        stop = text[1:3]
        cut = c.completions.create(model=a.model, prompt=prompt, max_tokens=12, stop=[stop])
        check(stop not in cut.choices[0].text and cut.choices[0].finish_reason == "stop",
              f"stop strings cut the text ({stop!r})")

    try:
        c.completions.create(model="no-such-model", prompt=prompt, max_tokens=4)
        check(False, "an unknown model is refused")
    except openai.NotFoundError:
        check(True, "an unknown model is a 404 (NotFoundError)")
    for kwargs, field in [({"temperature": 5}, "temperature"),
                          ({"logprobs": 3}, "logprobs"),
                          ({"presence_penalty": 1.0}, "presence_penalty"),
                          ({"extra_body": {"echo": True}}, "echo")]:
        try:
            c.completions.create(model=a.model, prompt=prompt, max_tokens=4, **kwargs)
            check(False, f"{field} is refused")
        except openai.BadRequestError as e:
            check(field in str(e), f"{field} is a 400 that names it")
    print("all checks passed")


if __name__ == "__main__":
    main()
