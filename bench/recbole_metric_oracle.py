"""RecBole's own Hit/NDCG/MRR code on fixed, seeded ranked lists: the oracle our metric tests compare against.

    .venv-recbole/bin/python bench/recbole_metric_oracle.py            # writes tests/data/recbole_metric_oracle.json

Ranked lists of 500 users over a 300-item catalog are drawn with a fixed seed (the target is in the top 20 for
about half of them, at every rank); RecBole 1.2.1's `Hit`, `NDCG` and `MRR` classes (the code its evaluator runs)
compute the metrics at K = 1, 5, 10, 20 with 12 decimals. The JSON holds the lists, targets and RecBole's values,
so `tests/test_metrics.py` can check lsrec_hf's metrics against RecBole's output without importing RecBole.
"""

import json
import os

import numpy as np
import recbole
from recbole.evaluator.metrics import MRR, NDCG, Hit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPK = [1, 5, 10, 20]


def main():
    np.float = np.float_  # what recbole.config.Config does on numpy >= 1.24 before its metrics run
    rng = np.random.default_rng(2026)
    num_users, num_items = 500, 300
    ranked = np.stack([rng.permutation(num_items)[:20] for _ in range(num_users)])
    targets = np.where(rng.random(num_users) < 0.5, ranked[np.arange(num_users), rng.integers(0, 20, num_users)],
                       rng.integers(0, num_items, num_users))
    pos_index = ranked == targets[:, None]
    pos_len = np.ones(num_users, dtype=np.int64)  # leave-one-out: one relevant item per user
    config = {"topk": TOPK, "metric_decimal_place": 12}
    values = {}
    for name, metric_class in (("hit", Hit), ("ndcg", NDCG), ("mrr", MRR)):
        metric = metric_class(config)
        # the same calls as each class's calculate_metric (only NDCG reads pos_len)
        per_user = metric.metric_info(pos_index, pos_len) if name == "ndcg" else metric.metric_info(pos_index)
        values.update(metric.topk_result(name, per_user))
    out = os.path.join(ROOT, "tests", "data", "recbole_metric_oracle.json")
    with open(out, "w") as f:
        json.dump({"recbole": recbole.__version__, "num_items": num_items, "topk": TOPK,
                   "ranked": ranked.tolist(), "targets": targets.tolist(),
                   "values": {k: float(v) for k, v in values.items()}}, f)
    print(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
