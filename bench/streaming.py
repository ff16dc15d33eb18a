"""Streaming user state: folding one new event into a long user's state vs reading the whole history again.

    python bench/streaming.py --checkpoint outputs/lsrec-ml-100k --history 10000 --repeats 20

A user with `--history` events (items drawn from the catalog) is encoded once into a state; then one new event
is folded in and scored (`fold_in` + `score_state`), and, as the baseline, the whole history plus the event is
scored from scratch (`score_next`). Prints a markdown table, writes JSON to bench/results/.
"""

import argparse

import torch
import transformers

from common import median_seconds, write_result
from lsrec_hf.processing.tokens import to_tokens
from lsrec_hf.inference.user_state import encode_user, fold_in, score_state




def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="outputs/lsrec-ml-100k")
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/streaming.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model = transformers.AutoModel.from_pretrained(args.checkpoint).eval()
    num_items = model.config.num_items
    history = to_tokens(torch.randint(0, num_items, (1, args.history)))
    new_event = to_tokens(torch.randint(0, num_items, (1, 1)))

    with torch.no_grad():
        state = encode_user(model, history)
        fold_seconds = median_seconds(lambda: score_state(model, fold_in(model, state, new_event)), args.repeats)
        full = torch.cat([history, new_event], dim=1)
        reencode_seconds = median_seconds(lambda: model.score_next(full), max(3, args.repeats // 4))

    rows = [("fold in 1 event + score", fold_seconds), (f"re-encode {args.history + 1} events + score", reencode_seconds)]
    print(f"| operation ({args.history}-event user, {num_items} items) | median ms |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.2f} |")
    print(f"\nre-encode / fold-in: {reencode_seconds / fold_seconds:.1f}x")

    result = {
        "benchmark": "streaming", "history_events": args.history, "num_items": num_items,
        "fold_in_ms": fold_seconds * 1000, "reencode_ms": reencode_seconds * 1000,
        "speedup": reencode_seconds / fold_seconds, "repeats": args.repeats, "seed": args.seed,
        "config": {k: getattr(model.config, k) for k in ("hidden_size", "num_hidden_layers", "segment_length",
                                                          "memory_length", "memory")},
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
