"""The next ten films for a MovieLens-100K user, why, and what the user's history is about.

    python recipes/pretrain.py                                   # trains outputs/lsrec-ml-100k
    python examples/recommend_ml100k.py                          # user 1 of ML-100K
    python examples/recommend_ml100k.py outputs/lsrec-ml-100k --user 42
"""

import argparse
import sys

from transformers import pipeline

import lsrec_hf  # noqa: F401  (registers the "recommendation" pipeline)
from lsrec_hf.data import load_data
from lsrec_hf.inference.explain import item_name
from lsrec_hf.processing.sequences import build_user_sequences


def format_weights(weights):
    return ", ".join(f"{aspect} {weight:.2f}" for aspect, weight in weights.items()) or "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default="outputs/lsrec-ml-100k", help="a saved model or Hub repo")
    parser.add_argument("--user", default="1", help="an ML-100K user id")
    parser.add_argument("--top_k", type=int, default=10)
    args = parser.parse_args()

    recommend = pipeline("recommendation", model=args.checkpoint)
    catalog = recommend.model.catalog

    # The user's whole history, oldest first. Item ids, not indices: the pipeline maps them through the model's
    # own catalog, so it does not matter how this loader orders the items.
    data = load_data("ml-100k")
    sequences = build_user_sequences(data.interactions, data.catalog)
    user_ids = [str(u) for u in sequences.user_ids]
    if args.user not in user_ids:
        sys.exit(f"error: user '{args.user}' is not in ML-100K (ids 1 to {len(user_ids)})")
    history = [data.catalog.item_ids[i] for i in sequences.items[user_ids.index(args.user)]]

    output = recommend(history, top_k=args.top_k, explain=True, profile=True)

    latest = ", ".join(item_name(catalog, catalog.index(i)) for i in history[-3:])
    print(f"User {args.user}: {len(history)} films, the latest {latest}\n")
    for part in ("long_term", "short_term"):
        print(part.replace("_", "-"))
        for kind, weights in output["profile"][part].items():
            print(f"  {kind:<9} {format_weights(weights)}")
    print(f"\nTop {len(output['recommendations'])}:")
    for rank, item in enumerate(output["recommendations"], 1):
        explanation = item["explanation"]
        print(f"{rank:>3}. {item_name(catalog, catalog.index(item['item_id']))}  score {item['score']:.2f}, "
              f"long-term share {explanation['long_term_share']:.2f}")
        print(f"     {explanation['reason'] or 'no single film of the history stands out'}")


if __name__ == "__main__":
    main()
