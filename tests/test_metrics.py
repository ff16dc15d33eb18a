"""Full-ranking HR/NDCG/MRR@K: hand-computed values, the `evaluate` module, and a RecBole oracle."""

import json
import math
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import evaluate
import numpy as np
import pytest

from lsrec_hf.evaluation.metrics import (
    FULL_RANKING_PATH,
    compute_ranking_metrics,
    load_full_ranking_metric,
    ranking_metrics,
    ranks_from_topk,
)


def _list_with_target_at(rank, target=1000, length=20):
    """A length-20 ranked list with `target` at 1-based `rank` (None: absent)."""
    ranked = list(range(length))
    if rank is not None:
        ranked[rank - 1] = target
    return ranked


# Targets at ranks 1, 3, 15 and absent.
PREDICTIONS = [_list_with_target_at(r) for r in (1, 3, 15, None)]
REFERENCES = [1000] * 4
EXPECTED = {
    "hr@10": 2 / 4,  # ranks 1, 3
    "ndcg@10": (1 + 1 / math.log2(4)) / 4,  # (1 + 0.5) / 4 = 0.375
    "mrr@10": (1 + 1 / 3) / 4,  # 1/3
    "hr@20": 3 / 4,  # ranks 1, 3, 15
    "ndcg@20": (1 + 1 / math.log2(4) + 1 / math.log2(16)) / 4,  # (1 + 0.5 + 0.25) / 4 = 0.4375
    "mrr@20": (1 + 1 / 3 + 1 / 15) / 4,  # 21/60 = 0.35
    "num_users": 4,
}


def _assert_metrics_equal(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-12), key


def test_ranks_from_topk():
    ranks = ranks_from_topk(PREDICTIONS, REFERENCES)
    np.testing.assert_array_equal(ranks, [1, 3, 15, np.inf])


def test_hand_computed_values():
    _assert_metrics_equal(compute_ranking_metrics(PREDICTIONS, REFERENCES), EXPECTED)
    _assert_metrics_equal(ranking_metrics([1, 3, 15, np.inf], (20, 10)), EXPECTED)
    # Arrays work as well as lists.
    _assert_metrics_equal(compute_ranking_metrics(np.array(PREDICTIONS), np.array(REFERENCES)), EXPECTED)


def test_evaluate_load_local_path():
    metric = evaluate.load(FULL_RANKING_PATH)
    assert type(metric).__name__ == "FullRanking"
    _assert_metrics_equal(metric.compute(predictions=PREDICTIONS, references=REFERENCES), EXPECTED)

    # Batches accumulate like any evaluate metric.
    metric = load_full_ranking_metric()
    metric.add_batch(predictions=PREDICTIONS[:2], references=REFERENCES[:2])
    metric.add_batch(predictions=PREDICTIONS[2:], references=REFERENCES[2:])
    _assert_metrics_equal(metric.compute(), EXPECTED)

    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, k_values=(1, 3))
    assert result == pytest.approx({"hr@1": 0.25, "ndcg@1": 0.25, "mrr@1": 0.25, "hr@3": 0.5, "ndcg@3": 0.375, "mrr@3": 1 / 3, "num_users": 4})


def test_evaluate_load_offline_with_fresh_hf_home(tmp_path):
    """`evaluate.load` on the path needs no network and no pre-filled cache."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("HF_MODULES_CACHE", None)
    code = (
        "import json, evaluate\n"
        f"m = evaluate.load({FULL_RANKING_PATH!r})\n"
        f"print(json.dumps(m.compute(predictions={PREDICTIONS!r}, references={REFERENCES!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    _assert_metrics_equal(json.loads(out.stdout.strip().splitlines()[-1]), EXPECTED)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="`ranked_lists`.*`targets`"):
        compute_ranking_metrics(PREDICTIONS, REFERENCES[:3])
    with pytest.raises(ValueError, match="predictions.*references"):
        load_full_ranking_metric().compute(predictions=PREDICTIONS, references=REFERENCES[:3])


def test_too_short_list_raises():
    short = PREDICTIONS[:1] + [list(range(12))]
    with pytest.raises(ValueError, match=r"`ranked_lists\[1\]` has 12 items"):
        compute_ranking_metrics(short, REFERENCES[:2])
    with pytest.raises(ValueError, match=r"`predictions\[1\]` has 12 items"):
        load_full_ranking_metric().compute(predictions=short, references=REFERENCES[:2])
    # Declaring a catalog at least as big as max K does not excuse a short list.
    with pytest.raises(ValueError, match="needs at least 20"):
        compute_ranking_metrics([list(range(12))], [3], num_items=50)


def test_small_catalog_allows_short_lists():
    # 5 items: history removed leaves 3 and 1 candidates; target at rank 3 and 1.
    result = compute_ranking_metrics([[1, 2, 3], [4]], [3, 4], num_items=5)
    _assert_metrics_equal(
        result,
        {"hr@10": 1.0, "ndcg@10": 0.75, "mrr@10": 2 / 3, "hr@20": 1.0, "ndcg@20": 0.75, "mrr@20": 2 / 3, "num_users": 2},
    )
    with pytest.raises(ValueError, match="num_items"):
        compute_ranking_metrics([[1, 2, 7]], [3], num_items=5)


@pytest.mark.parametrize("bad", [(), (0, 10), (2.5,)])
def test_bad_k_values(bad):
    with pytest.raises(ValueError, match="k_values"):
        compute_ranking_metrics(PREDICTIONS, REFERENCES, k_values=bad)


# --- RecBole 1.2.1 formulas, re-implemented as an independent oracle ------------------------------


def _recbole_metrics(pos_index, pos_len, k_values):
    """RecBole's Hit/MRR/NDCG from `pos_index` (users x K, True where the ranked item is relevant)."""
    num_users, max_k = pos_index.shape

    # Hit: any relevant item within the first k.
    hit = (np.cumsum(pos_index, axis=1) > 0).astype(int)

    # MRR: 1 / (index of the first relevant item + 1), from that position on.
    mrr = np.zeros_like(pos_index, dtype=float)
    for row, idx in enumerate(pos_index.argmax(axis=1)):
        mrr[row, idx:] = 1 / (idx + 1) if pos_index[row, idx] > 0 else 0

    # NDCG: cumulative DCG over the ranked list divided by the ideal DCG for pos_len relevant items.
    idcg_len = np.where(pos_len > max_k, max_k, pos_len)
    iranks = np.tile(np.arange(1, max_k + 1, dtype=float), (num_users, 1))
    idcg = np.cumsum(1.0 / np.log2(iranks + 1), axis=1)
    for row, idx in enumerate(idcg_len):
        idcg[row, idx:] = idcg[row, idx - 1]
    ranks = np.tile(np.arange(1, max_k + 1, dtype=float), (num_users, 1))
    dcg = np.cumsum(np.where(pos_index, 1.0 / np.log2(ranks + 1), 0), axis=1)
    ndcg = dcg / idcg

    out = {}
    for k in k_values:
        out[f"hr@{k}"] = hit[:, k - 1].mean()
        out[f"ndcg@{k}"] = ndcg[:, k - 1].mean()
        out[f"mrr@{k}"] = mrr[:, k - 1].mean()
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_recbole_formulas(seed):
    rng = np.random.default_rng(seed)
    num_items, num_users, k_values = 60, 300, (5, 10, 20)
    ranked_lists, targets = [], []
    for _ in range(num_users):
        # Full ranking: score every item, drop the user's history, keep the top 20.
        history = rng.choice(num_items, size=rng.integers(1, 15), replace=False)
        candidates = np.setdiff1d(np.arange(num_items), history)
        scores = rng.standard_normal(num_items)
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        ranked_lists.append(order[: max(k_values)].tolist())
        targets.append(int(rng.choice(candidates)))

    ranked = np.array(ranked_lists)
    pos_index = ranked == np.array(targets)[:, None]
    expected = _recbole_metrics(pos_index, np.ones(num_users, dtype=int), k_values)
    assert 0 < expected["hr@20"] < 1  # both hits and misses are exercised

    ours = compute_ranking_metrics(ranked_lists, targets, k_values=k_values)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert ours["num_users"] == num_users


def test_equals_recboles_own_code_on_fixed_ranked_lists():
    """tests/data/recbole_metric_oracle.json: RecBole 1.2.1's Hit/NDCG/MRR classes run on seeded ranked lists
    (bench/recbole_metric_oracle.py, in RecBole's environment); ours must give the same numbers."""
    import json
    import pathlib

    from lsrec_hf.evaluation.metrics import compute_ranking_metrics

    oracle = json.loads((pathlib.Path(__file__).parent / "data" / "recbole_metric_oracle.json").read_text())
    ours = compute_ranking_metrics(oracle["ranked"], oracle["targets"], oracle["topk"], num_items=oracle["num_items"])
    assert len(oracle["values"]) == 12
    for name, value in oracle["values"].items():
        assert ours[name.replace("hit@", "hr@")] == pytest.approx(value, abs=1e-11), name
