"""Approximate top-10 (faiss) against exact scoring on a synthetic 1,000,000-item catalog, one thread.

    python bench/retrieval.py                      # 1M items, the default index (IVF1024,Flat), ~2 minutes
    python bench/retrieval.py --index HNSW32 --ef_construction 64   # the graph instead: 100 s more to build

The catalog: `--num_items` items with a power-law (Zipf, exponent 1) popularity and random unit-norm content
embeddings of `--content_dim` dims drawn around 1,000 topics (text embeddings cluster by subject); a small random
LSRec model (hidden 64, 2 layers, ids + text) whose output bias is the items' standardized log-popularity, scaled
so that the most popular item gains about 3 standard deviations of a user's inner products (popularity helps,
it does not decide the top-10 alone). Users: `--num_users`
histories of 20 items drawn by popularity.

Measured, each path end to end from the token histories (the user encoding is the same forward in both):
  * exact: `score_next` + history mask + `topk`, what `retrieval="exact"` runs (it computes the item
    representations from the content embeddings on every call);
  * exact, cached vectors: one matmul against the precomputed `[v_i, b_i]` + mask + `topk` (the least an exact
    search costs);
  * faiss: `lsrec_hf.model.retrieval.retrieve` on the `--index` index (history excluded by over-fetching and filtering).
Recall@10 = |faiss top-10 ∩ exact top-10| / 10, over all users. Latency: p50/p99 over `--repeats` calls for 1 user
and for a batch of 256 users. The index build time is reported separately. Prints a markdown table, writes
bench/results/retrieval.json.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402

import faiss  # noqa: E402

from lsrec_hf import LSRecConfig, LSRecForSequentialRecommendation  # noqa: E402
from lsrec_hf.evaluation import mask_history  # noqa: E402
from lsrec_hf.model.retrieval import item_index, item_vectors, next_user_states, retrieve  # noqa: E402
from lsrec_hf.processing.tokens import to_tokens  # noqa: E402

HISTORY_LENGTH = 20
TOP_K = 10


def synthetic_model(num_items, content_dim, num_topics, seed):
    """A random LSRec model over a synthetic catalog, and the catalog's popularity."""
    generator = torch.Generator().manual_seed(seed)
    config = LSRecConfig(num_items=num_items, content_dim=content_dim, hidden_size=64, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=256, segment_length=HISTORY_LENGTH,
                         memory_length=HISTORY_LENGTH, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = LSRecForSequentialRecommendation(config).eval()
    embeddings = model.model.embeddings
    with torch.no_grad():
        topics = torch.randn(num_topics, content_dim, generator=generator)
        content = embeddings.content_embeddings  # filled in place: 1M x 384 floats is 1.5 GB, one copy only
        for start in range(0, num_items, 100_000):
            rows = slice(start, min(start + 100_000, num_items))
            topic = torch.randint(num_topics, (rows.stop - start,), generator=generator)
            block = topics[topic] + 0.7 * torch.randn(rows.stop - start, content_dim, generator=generator)
            content[rows] = block / block.norm(dim=1, keepdim=True)
        # a trained projection spreads items apart; the default init (std 0.02) would make them nearly equal
        embeddings.text_proj.weight.normal_(0.0, 1.0 / content_dim ** 0.5, generator=generator)
        embeddings.item_ids.weight.normal_(0.0, 0.02, generator=generator)
        popularity = 1.0 / torch.arange(1, num_items + 1, dtype=torch.float64)
        popularity = popularity[torch.randperm(num_items, generator=generator)]
        popularity /= popularity.sum()
    return model, popularity


def set_bias_to_popularity(model, popularity, probe_ids):
    """Output bias = log-popularity, scaled to the spread of the inner products of the probe users."""
    with torch.no_grad():
        states, _ = next_user_states(model, probe_ids)
        dots = states @ model.model.embeddings.item_representations().T
        log_pop = torch.log(popularity).float()
        log_pop = (log_pop - log_pop.mean()) / log_pop.std()
        # the most popular item gains about 3 standard deviations of a user's inner products: popularity helps,
        # it does not decide the top-10 alone
        model.output_bias.bias.copy_(log_pop * 3.0 / log_pop.max() * dots.std(dim=1).mean())


def histories(popularity, num_users, generator):
    draws = torch.multinomial(popularity.float(), num_users * HISTORY_LENGTH, replacement=True, generator=generator)
    return to_tokens(draws.view(num_users, HISTORY_LENGTH))


def exact(model, input_ids):
    scores = mask_history(model.score_next(input_ids)[0].float(), input_ids)
    return scores.topk(TOP_K).indices


def exact_cached(model, vectors, input_ids):
    states, _ = next_user_states(model, input_ids)
    scores = torch.cat([states, states.new_ones(len(states), 1)], dim=1) @ vectors.T
    return mask_history(scores, input_ids).topk(TOP_K).indices


def approximate(model, input_ids):
    return retrieve(model, input_ids, TOP_K)[1]


def latency(function, input_ids, repeats):
    """p50 and p99 in milliseconds of `repeats` calls (after one warm-up call)."""
    function(input_ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(input_ids)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
            "repeats": repeats}


def recall(found, truth):
    return sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist())) / truth.numel()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_items", type=int, default=1_000_000)
    parser.add_argument("--content_dim", type=int, default=384, help="all-MiniLM-L6-v2's width")
    parser.add_argument("--num_topics", type=int, default=1000)
    parser.add_argument("--num_users", type=int, default=1024, help="users whose recall is measured")
    parser.add_argument("--index", default="auto", help="faiss index factory string (auto: lsrec_hf's default)")
    parser.add_argument("--ef_construction", type=int, default=80)
    parser.add_argument("--ef_search", type=int, default=256)
    parser.add_argument("--nprobe", type=int, default=64, help="IVF indexes only")
    parser.add_argument("--repeats_one", type=int, default=200, help="1-user calls timed (exact: a tenth)")
    parser.add_argument("--repeats_batch", type=int, default=20, help="256-user calls timed (exact: a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/retrieval.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)

    started = time.perf_counter()
    model, popularity = synthetic_model(args.num_items, args.content_dim, args.num_topics, args.seed)
    generator = torch.Generator().manual_seed(args.seed + 1)
    users = histories(popularity, args.num_users, generator)
    set_bias_to_popularity(model, popularity, users[:64])
    print(f"[retrieval] catalog of {args.num_items:,} items ready in {time.perf_counter() - started:.0f} s", flush=True)

    start = time.perf_counter()
    vectors = item_vectors(model)
    index = item_index(model, args.index, ef_construction=args.ef_construction, ef_search=args.ef_search,
                       nprobe=args.nprobe)
    build_s = time.perf_counter() - start
    kind = index.kind
    print(f"[retrieval] {kind} index built in {build_s:.0f} s", flush=True)

    truth = torch.cat([exact_cached(model, vectors, users[i:i + 256]) for i in range(0, len(users), 256)])
    found = torch.cat([approximate(model, users[i:i + 256]) for i in range(0, len(users), 256)])
    recall_at_10 = recall(found, truth)
    sweep = {}  # recall against the search effort, the index unchanged
    knob = "nprobe" if "IVF" in kind else "ef_search" if "HNSW" in kind else None
    if knob:
        default = getattr(index, knob)
        for value in (default // 4, default // 2, default, default * 2):
            setattr(index, knob, value)
            sweep[value] = recall(torch.cat([approximate(model, users[i:i + 256])
                                             for i in range(0, len(users), 256)]), truth)
        setattr(index, knob, default)
    top_popular = set(torch.argsort(popularity, descending=True)[:1000].tolist())
    popular_share = sum(i in top_popular for i in truth.flatten().tolist()) / truth.numel()
    assert exact(model, users[:4]).tolist() == truth[:4].tolist(), "exact paths disagree"

    paths = {"exact (score_next + mask + topk)": lambda ids: exact(model, ids),
             "exact, cached item vectors": lambda ids: exact_cached(model, vectors, ids),
             f"faiss {kind}": lambda ids: approximate(model, ids)}
    repeats = {"exact (score_next + mask + topk)": 10, "exact, cached item vectors": 4, f"faiss {kind}": 1}
    rows = {}
    for name, function in paths.items():
        rows[name] = {"1 user": latency(function, users[:1], max(args.repeats_one // repeats[name], 5)),
                      "256 users": latency(function, users[:256], max(args.repeats_batch // max(repeats[name] // 2, 1),
                                                                        3))}
        print(f"[retrieval] timed {name}", flush=True)
    total_s = time.perf_counter() - started

    print(f"\nTop-{TOP_K} over {args.num_items:,} items, one thread; recall of the exact top-{TOP_K} over "
          f"{len(users)} users: **{recall_at_10:.4f}** ({kind}, {knob} {getattr(index, knob) if knob else '-'}); "
          f"index build {build_s:.0f} s; {popular_share:.0%} of the exact top-{TOP_K} "
          f"are among the 1,000 most popular items\n")
    print("| path | 1 user p50 (ms) | 1 user p99 (ms) | 256 users p50 (ms) | 256 users p99 (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        one, batch = row["1 user"], row["256 users"]
        print(f"| {name} | {one['p50_ms']:.1f} | {one['p99_ms']:.1f} | {batch['p50_ms']:.0f} | {batch['p99_ms']:.0f} |")
    if sweep:
        print(f"\nrecall@{TOP_K} by {knob}: " + ", ".join(f"{v}: {r:.4f}" for v, r in sweep.items()))
    print(f"\n(p99 of {rows[f'faiss {kind}']['1 user']['repeats']} calls for faiss with 1 user; of fewer for "
          f"the slower paths, see the JSON; whole run {total_s:.0f} s)")

    write_result(args.out, {
        "num_items": args.num_items, "content_dim": args.content_dim, "num_topics": args.num_topics,
        "hidden_size": 64, "history_length": HISTORY_LENGTH, "top_k": TOP_K, "num_users": len(users),
        "recall_by_" + (knob or "setting"): sweep,
        "index": {"factory": kind, "asked": args.index, "ef_construction": args.ef_construction,
                  "ef_search": args.ef_search,
                  "nprobe": args.nprobe, "build_seconds": build_s, "faiss": faiss.__version__},
        "recall_at_10": recall_at_10, "exact_top10_share_in_1000_most_popular": popular_share,
        "latency": rows, "threads": 1, "seed": args.seed, "total_seconds": total_s,
    })


if __name__ == "__main__":
    main()
