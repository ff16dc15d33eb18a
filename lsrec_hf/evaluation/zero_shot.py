"""Zero-shot evaluation: a pretrained model ranked in a domain it never saw, with no training (its catalog replaced by
the new domain's, every item known by its text only).

Imports data, processing and training's `adopt_catalog`; used by `recipes/pretrain.py --zero_shot_dataset`.
"""

import copy

from ..data.domains import DOMAIN, with_domain
from ..processing.context import model_event_features
from ..processing.sequences import build_user_sequences, leave_one_out
from ..training.finetuning import adopt_catalog
from .baselines import MostPopular, evaluate_baseline
from .rank import evaluate_ranking


def zero_shot_metrics(model, data, accelerator=None, batch_size=256, exclude_history=True):
    """How `model` ranks in `data`, a domain it never saw, with no training: a copy of it put onto `data`'s catalog
    (every item its text), tested leave-one-out with full ranking over `data`'s items; most-popular, counted on the
    same split's training events, beside it. Every process must call it (the ranking is shared out)."""
    if model.config.scenario_feature == DOMAIN:  # the new domain's events carry its (unknown) domain token
        data = with_domain(data)
    moved = adopt_catalog(copy.deepcopy(model), data.catalog, accelerator)
    splits = leave_one_out(build_user_sequences(data.interactions, moved.catalog, model_event_features(data, moved.config)))
    test = evaluate_ranking(moved, splits.test, accelerator, batch_size, description=f"zero-shot on {data.name}",
                            exclude_history=exclude_history)
    popular = evaluate_baseline(MostPopular(splits.train, len(data.catalog)), splits.test, exclude_history=exclude_history)
    return {"dataset": data.name, "num_items": len(data.catalog), "num_test_users": len(splits.test),
            "test": test, "most_popular": popular}


__all__ = ["zero_shot_metrics"]
