#!/usr/bin/env python3
"""The `lm` proxy of `syllabus score loss --proxy lm`, written in PyTorch (eager), for the
side-by-side bench (benches/proxy_lm_torch.sh). Same architecture (token and learned position
embeddings, pre-norm blocks with causal attention in heads of 32 and a 4x tanh-GELU MLP,
LayerNorm eps 1e-5, an untied output layer with bias), the same initial weights (syllabus's
SplitMix64 + Box-Muller draws, in its parameter order), the same windows and the same seeded
batch order, AdamW with the same settings: both start from the same weights and see the same
batches, so per-document losses agree up to float rounding.

    python benches/proxy_lm_torch.py LAKE.jsonl TOKENIZER.json OUT.jsonl [--seed S] [--threads N]
        [--width 64] [--layers 2] [--context 64] [--batch-size 16] [--lr 3e-3] [--epochs 1]

Writes {"id", "loss"} per document and prints training and scoring tokens/s. Needs torch,
numpy and tokenizers (not part of `make test`).
"""
import argparse
import json
import math
import time

import numpy as np
import torch
from tokenizers import Tokenizer

M64 = (1 << 64) - 1


class Rng:
    """syllabus's proxy::nn::Rng: SplitMix64, uniform in [0, 1), Box-Muller normals."""

    def __init__(self, seed):
        self.s = (seed ^ 0x5EED5EED5EED5EED) & M64

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) / float(1 << 53)

    def normal(self):
        u1 = max(self.uniform(), 2.2250738585072014e-308)
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.next_u64() % (i + 1)
            p[i], p[j] = p[j], p[i]
        return p


class Params:
    def __init__(self, seed):
        self.rng = Rng(seed)
        self.all = []

    def normal(self, shape, std):
        n = int(np.prod(shape))
        vals = np.array([self.rng.normal() * std for _ in range(n)], dtype=np.float64).astype(np.float32)
        p = torch.nn.Parameter(torch.from_numpy(vals.reshape(shape)))
        self.all.append(p)
        return p

    def const(self, shape, v):
        p = torch.nn.Parameter(torch.full(shape, float(v)))
        self.all.append(p)
        return p


def layer_norm(x, g, b):
    mean = x.mean(-1, keepdim=True)
    c = x - mean
    var = (c * c).mean(-1, keepdim=True)
    return c / torch.sqrt(var + 1e-5) * g + b


class Lm:
    def __init__(self, vocab, width, layers, context, seed):
        p = Params(seed)
        std, proj_std = 0.02, 0.02 / math.sqrt(2.0 * max(layers, 1))
        d = width
        self.tok = p.normal((vocab, d), std)
        self.pos = p.normal((context, d), std)
        self.blocks = []
        for _ in range(layers):
            blk = {}
            blk["ln1"] = (p.const((d,), 1.0), p.const((d,), 0.0))
            blk["qkv"] = (p.normal((d, 3 * d), std), p.const((3 * d,), 0.0))
            blk["proj"] = (p.normal((d, d), proj_std), p.const((d,), 0.0))
            blk["ln2"] = (p.const((d,), 1.0), p.const((d,), 0.0))
            blk["up"] = (p.normal((d, 4 * d), std), p.const((4 * d,), 0.0))
            blk["down"] = (p.normal((4 * d, d), proj_std), p.const((d,), 0.0))
            self.blocks.append(blk)
        self.ln_f = (p.const((d,), 1.0), p.const((d,), 0.0))
        self.head = (p.normal((d, vocab), std), p.const((vocab,), 0.0))
        self.params = p.all
        self.width, self.heads = d, max(d // 32, 1)

    def forward(self, inputs):
        b, t = inputs.shape
        d, nh = self.width, self.heads
        hd = d // nh
        x = self.tok[inputs] + self.pos[:t]
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        lin = lambda x, wb: x @ wb[0] + wb[1]  # noqa: E731
        for blk in self.blocks:
            h = layer_norm(x, *blk["ln1"])
            q, k, v = lin(h, blk["qkv"]).split(d, dim=-1)
            q, k, v = (z.reshape(b, t, nh, hd).transpose(1, 2) for z in (q, k, v))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, d)
            x = x + lin(y, blk["proj"])
            h = layer_norm(x, *blk["ln2"])
            x = x + lin(torch.nn.functional.gelu(lin(h, blk["up"]), approximate="tanh"), blk["down"])
        return lin(layer_norm(x, *self.ln_f), self.head)


def windows(docs, context):
    out = []
    for d, toks in enumerate(docs):
        n, start = len(toks) + 1, 0
        while start < n:
            ln = min(context, n - start)
            out.append((d, start, ln))
            start += ln
    return out


def batch(docs, ws, eos):
    ln = max(w[2] for w in ws)
    inp = np.full((len(ws), ln), eos, dtype=np.int64)
    tgt = np.full((len(ws), ln), eos, dtype=np.int64)
    mask = np.zeros((len(ws), ln), dtype=np.float32)
    for r, (d, start, n) in enumerate(ws):
        stream = [eos] + docs[d] + [eos]
        inp[r, :n] = stream[start:start + n]
        tgt[r, :n] = stream[start + 1:start + n + 1]
        mask[r, :n] = 1.0
    return torch.from_numpy(inp), torch.from_numpy(tgt), torch.from_numpy(mask)


def schedule(rng, n, batch_size, epochs):
    steps = math.ceil(epochs * n / batch_size)
    order, out = [], []
    for _ in range(steps):
        b = []
        while len(b) < min(batch_size, n):
            if not order:
                order = rng.permutation(n)
                order.reverse()
            b.append(order.pop())
        out.append(b)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--epochs", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tok = Tokenizer.from_file(a.tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    rows = [json.loads(line) for line in open(a.lake, encoding="utf-8")]
    docs = [tok.encode(r["text"], add_special_tokens=False).ids for r in rows]
    vocab = max(tok.get_vocab_size(True), max(tok.get_added_tokens_decoder().keys(), default=0) + 1)
    model = Lm(vocab, a.width, a.layers, a.context, a.seed)
    opt = torch.optim.AdamW(model.params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ws = windows(docs, a.context)
    rng = Rng(((a.seed << 32) | 0xB47C) & M64)
    plan = schedule(rng, len(ws), a.batch_size, a.epochs)
    t0, trained = time.perf_counter(), 0
    for step in plan:
        sel = [ws[i] for i in step]
        inp, tgt, mask = batch(docs, sel, eos)
        n = sum(w[2] for w in sel)
        logp = torch.log_softmax(model.forward(inp), dim=-1)
        loss = -(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * mask).sum() / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        trained += n
    train_s = time.perf_counter() - t0
    t0, sums = time.perf_counter(), np.zeros(len(docs))
    with torch.no_grad():
        for i in range(0, len(ws), a.batch_size):
            chunk = ws[i:i + a.batch_size]
            inp, tgt, mask = batch(docs, chunk, eos)
            logp = torch.log_softmax(model.forward(inp), dim=-1)
            per = (-(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)) * mask).sum(-1).double().numpy()
            for (d, _, _), s in zip(chunk, per):
                sums[d] += s
    score_s = time.perf_counter() - t0
    scored = sum(len(d) + 1 for d in docs)
    with open(a.out, "w") as f:
        for r, d, s in zip(rows, docs, sums):
            f.write(json.dumps({"id": r["id"], "loss": s / (len(d) + 1)}) + "\n")
    print(json.dumps({"train_tokens": trained, "train_s": train_s, "train_tokens_per_s": trained / train_s,
                      "score_tokens": scored, "score_s": score_s, "score_tokens_per_s": scored / score_s}))


if __name__ == "__main__":
    main()
