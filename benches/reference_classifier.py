"""The fastText side of benches/compare_classifier.sh, and the data both sides use.

    python reference_classifier.py prepare LAKE.jsonl DIR DOMAINS   # train/test split, both tools' files
    python reference_classifier.py train DIR THREADS        # fastText train_supervised -> DIR/ft.bin
    python reference_classifier.py score MODEL LAKE.jsonl OUT.tsv   # batch predict of every document
    python reference_classifier.py auroc DIR FT.tsv SYL.parquet     # held-out AUROC of both models

The task is DCLM's target-vs-lake: positives are the lake's documents of DOMAINS (comma-
separated: `docs,prose`, the natural-language ones, 1,452 documents; or `code`, 14,550), negatives
as many drawn at random from the lake (so some of them are of DOMAINS too); the held-out fifth
of the lake (by a hash of the id) is labelled by its domain. Hyperparameters are fastText's
defaults with DCLM's word bigrams.
"""
import hashlib
import json
import random
import sys
import time

HYPER = dict(lr=0.1, dim=100, epoch=5, minCount=1, wordNgrams=2, bucket=2000000, loss="softmax")
POSITIVE = set()


def held_out(doc_id):
    return hashlib.sha1(doc_id.encode()).digest()[0] < 52  # about a fifth


def prepare(lake, out, domains):
    POSITIVE.update(domains.split(","))
    train_pos, train_all, test = [], [], []
    with open(lake) as f:
        for line in f:
            r = json.loads(line)
            if held_out(r["id"]):
                test.append(r)
            else:
                train_all.append(r)
                if r["domain"] in POSITIVE:
                    train_pos.append(r)
    rng = random.Random(0)
    negatives = rng.sample(train_all, len(train_pos))
    for name, rows in [("positive", train_pos), ("negative", negatives), ("test", test)]:
        with open(f"{out}/{name}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps({"id": r["id"], "text": r["text"], "domain": r["domain"]}) + "\n")
    lines = [f"__label__positive {r['text']}" for r in train_pos] + [f"__label__negative {r['text']}" for r in negatives]
    lines = [l.replace("\n", " ") for l in lines]
    rng.shuffle(lines)
    with open(f"{out}/train.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(len(train_pos), len(negatives), len(test))


def train(out, threads):
    import fasttext
    t = time.time()
    fasttext.train_supervised(input=f"{out}/train.txt", thread=int(threads), seed=0, verbose=0, **HYPER).save_model(f"{out}/ft.bin")
    print(f"{time.time() - t:.2f}")


def score(model, lake, out):
    import fasttext
    m = fasttext.load_model(model)
    ids, texts = [], []
    with open(lake) as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["id"])
            texts.append(r["text"].replace("\n", " "))
    t = time.time()
    labels, probs = m.predict(texts, k=-1, threshold=0.0)
    with open(out, "w") as f:
        for i, ls, ps in zip(ids, labels, probs):
            p = dict(zip(ls, ps)).get("__label__positive", 0.0)
            f.write(f"{i}\t{p}\n")
    print(f"{time.time() - t:.2f}", file=sys.stderr)


def auroc(out, ft_tsv, syl_parquet, domains):
    POSITIVE.update(domains.split(","))
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score
    truth = {}
    with open(f"{out}/test.jsonl") as f:
        for line in f:
            r = json.loads(line)
            truth[r["id"]] = r["domain"] in POSITIVE
    ft = dict(l.rstrip("\n").split("\t") for l in open(ft_tsv))
    syl = dict(zip(*[pq.read_table(syl_parquet).column(c).to_pylist() for c in ("id", "clf_prob")]))
    ids = sorted(truth)
    y = [truth[i] for i in ids]
    print(f"{roc_auc_score(y, [float(ft[i]) for i in ids]):.4f} {roc_auc_score(y, [syl[i] for i in ids]):.4f} {sum(y)} {len(y)}")


if __name__ == "__main__":
    {"prepare": prepare, "train": train, "score": score, "auroc": auroc}[sys.argv[1]](*sys.argv[2:])
