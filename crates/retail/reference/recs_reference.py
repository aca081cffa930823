"""Reference figures for the recommendation backtest, with the `implicit` package.

Reads the split the Rust test writes (purchases.csv: customer,item,day; meta.json: cutoff,
holdout_days, k, window_days, n_items, available items) and prints JSON with hit rate,
precision, recall and NDCG at k for
- popularity: items by distinct buyers in (cutoff - window, cutoff], ties by item id (numpy);
- co_occurrence: implicit's CosineRecommender (K = all items) on the binary customer x item
  matrix of purchases up to the cut-off, filter_already_liked_items, unavailable items filtered.
Relevant items: bought in (cutoff, cutoff + holdout] and never before the cut-off; customers with
history and at least one relevant item are scored.
"""
import json
import warnings
import sys

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import CosineRecommender

warnings.filterwarnings("ignore")


def metrics(relevant, recs, k):
    hit = prec = rec = ndcg = 0.0
    for rel, lst in zip(relevant, recs):
        lst = list(lst)[:k]
        hits = [1.0 if i in rel else 0.0 for i in lst]
        h = sum(hits)
        dcg = sum(x / np.log2(r + 2) for r, x in enumerate(hits))
        idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(rel))))
        hit += h > 0
        prec += h / k
        rec += h / len(rel)
        ndcg += dcg / idcg
    n = len(relevant)
    return {"customers": n, "hit_rate": hit / n, "precision": prec / n, "recall": rec / n, "ndcg": ndcg / n}


def main(folder):
    meta = json.load(open(f"{folder}/meta.json"))
    data = np.loadtxt(f"{folder}/purchases.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    cust, item, day = data[:, 0], data[:, 1], data[:, 2]
    cutoff, holdout, k = meta["cutoff"], meta["holdout_days"], meta["k"]
    n_items = meta["n_items"]
    available = np.zeros(n_items, dtype=bool)
    available[meta["available"]] = True

    train = day <= cutoff
    test = (day > cutoff) & (day <= cutoff + holdout)
    users = np.unique(cust)
    uidx = {u: i for i, u in enumerate(users)}
    rows = np.array([uidx[u] for u in cust[train]])
    m = sp.csr_matrix((np.ones(len(rows)), (rows, item[train])), shape=(len(users), n_items))
    m.data[:] = 1.0  # binary: duplicates summed, then reset
    m.sum_duplicates()
    m.data[:] = 1.0

    history = {}
    for u, i in zip(cust[train], item[train]):
        history.setdefault(u, set()).add(i)
    holdout_items = {}
    for u, i in zip(cust[test], item[test]):
        holdout_items.setdefault(u, set()).add(i)
    scored = sorted(u for u in holdout_items if u in history and holdout_items[u] - history[u])
    relevant = [holdout_items[u] - history[u] for u in scored]

    window = (day > cutoff - meta["window_days"]) & train
    pairs = np.unique(np.stack([item[window], cust[window]], axis=1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=n_items)
    order = np.lexsort((np.arange(n_items), -counts))
    ranked = [i for i in order if counts[i] > 0 and available[i]]
    pop = [[i for i in ranked if i not in history[u]][:k] for u in scored]

    model = CosineRecommender(K=n_items + 1)
    model.fit(m, show_progress=False)
    unavailable = np.flatnonzero(~available)
    co = []
    for u in scored:
        ids, scores = model.recommend(uidx[u], m[uidx[u]], N=k, filter_already_liked_items=True,
                                      filter_items=unavailable)
        co.append([i for i, s in zip(ids, scores) if s > 0])

    print(json.dumps({"popularity": metrics(relevant, pop, k), "co_occurrence": metrics(relevant, co, k)}))


if __name__ == "__main__":
    main(sys.argv[1])
