"""What a Megatron user runs today to get a tokenized dataset: Megatron-LM's
tools/preprocess_data.py, in essence (written here from its documented behaviour, not copied):
read jsonl, tokenize with a Hugging Face tokenizer, append EOS, write an indexed dataset
(.bin tokens + .idx index, uint16 below 65,500 tokens).

    python benches/reference_curriculum.py LAKE.jsonl TOKENIZER.json CORES OUT_PREFIX

Tokenization is the Rust `tokenizers` library behind Python (encode_batch, RAYON_NUM_THREADS
threads); prints the number of tokens written.
"""
import json
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

lake, tok_path, cores, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
os.environ.setdefault("RAYON_NUM_THREADS", str(cores))
tok = Tokenizer.from_file(tok_path)
eos = tok.token_to_id("<|endoftext|>")
dtype = np.uint16 if tok.get_vocab_size() < 65500 else np.int32
lengths = []
total = 0
with open(lake, "rb") as f, open(prefix + ".bin", "wb") as bin_out:
    batch = []

    def flush():
        global total
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            ids = np.array(enc.ids + [eos], dtype=dtype)
            bin_out.write(ids.tobytes(order="C"))
            lengths.append(len(ids))
            total += len(ids)
        batch.clear()

    for line in f:
        batch.append(json.loads(line)["text"])
        if len(batch) == 1024:
            flush()
    flush()
n = len(lengths)
with open(prefix + ".idx", "wb") as idx:
    idx.write(b"MMIDIDX\x00\x00")
    idx.write(struct.pack("<Q", 1))
    idx.write(struct.pack("<B", 8 if dtype == np.uint16 else 4))
    idx.write(struct.pack("<Q", n))
    idx.write(struct.pack("<Q", n + 1))
    lens = np.array(lengths, dtype=np.int32)
    idx.write(lens.tobytes(order="C"))
    pointers = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    idx.write(pointers.tobytes(order="C"))
    idx.write(np.arange(n + 1, dtype=np.int64).tobytes(order="C"))
print(total)
