"""How well a clustering recovers the bench lake's sources (the id prefix: prose, code, math,
docs): normalized mutual information and purity.

    python benches/cluster_quality.py CLUSTERS.(csv|parquet)
"""
import sys

import pandas as pd
from sklearn.metrics import normalized_mutual_info_score


def main():
    path = sys.argv[1]
    t = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    t = t.dropna(subset=["cluster"])
    source = t["id"].astype(str).str.split("-").str[0]
    nmi = normalized_mutual_info_score(source, t["cluster"].astype(int))
    purity = t.groupby("cluster")["id"].apply(lambda s: s.str.split("-").str[0].value_counts().iloc[0]).sum() / len(t)
    print(f"{nmi:.3f} {purity:.3f}")


if __name__ == "__main__":
    main()
