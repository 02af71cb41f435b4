"""What users run today to cluster a lake: scikit-learn's hashed TF-IDF of word unigrams and
bigrams and MiniBatchKMeans, end to end (read, vectorize, fit, assign, write).

    python benches/reference_cluster.py LAKE.jsonl K PASSES OUT.csv

The whole matrix is built in memory, as scikit-learn needs. Writes id,cluster per row.
"""
import json
import sys

from sklearn.cluster import MiniBatchKMeans
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer


def main():
    lake, k, passes, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ids, texts = [], []
    with open(lake, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(row["text"])
    hv = HashingVectorizer(n_features=1 << 15, ngram_range=(1, 2), alternate_sign=False, norm=None)
    x = TfidfTransformer(smooth_idf=True).fit_transform(hv.transform(texts))
    km = MiniBatchKMeans(n_clusters=k, random_state=0, n_init=1, batch_size=1024, max_iter=passes)
    labels = km.fit_predict(x)
    with open(out, "w", encoding="utf-8") as f:
        f.write("id,cluster\n")
        for i, c in zip(ids, labels):
            f.write(f"{i},{c}\n")


if __name__ == "__main__":
    main()
