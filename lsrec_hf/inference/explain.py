"""Why an item is recommended: the history events that drove it, found by deleting them.

Attention weights tell where the model looked, not what changed its answer; deleting an event and scoring again
does. An event drives a recommendation as much as its removal lowers the item's score. `deletion_test` checks that
this holds for the events together: removing the explained drivers should lower the score more than removing as
many random events.
"""

import random

import torch

from ..processing.collator import pad_left, pad_left_rows
from ..processing.tokens import PAD_TOKEN_ID, to_indices
from ..evaluation.rank import mask_history
from ..model.modeling_lsrec import LSRecMemory
from .user_state import short_segment_length

DEFAULT_LAST_N = 20
DEFAULT_NUM_DRIVERS = 3


def _repeat(memory, rows):
    if memory is None:
        return None
    return LSRecMemory(tuple(h.expand(rows, -1, -1) for h in memory.hidden), memory.mask.expand(rows, -1),
                       memory.long_sum.expand(rows, -1), memory.long_count.expand(rows))


@torch.no_grad()
def score_without(model, history, removals, memory=None, context=None):
    """Scores `[1 + len(removals), num_items]`: the whole `history` (item tokens), then the history without each set
    of positions in `removals`, in one forward. Also returns the gate of the whole history.

    `context`: optional `(history_context [L, F], target_context [F])` side-feature ids (see `score_next`); a
    deleted event's context goes with it.
    """
    keep = [list(range(len(history)))] + [[i for i in range(len(history)) if i not in removed] for removed in removals]
    input_ids = pad_left([[history[i] for i in row] for row in keep], len(history), PAD_TOKEN_ID).to(model.device)
    side = {}
    if context is not None:
        history_context, target_context = context
        side["context_ids"] = pad_left_rows([history_context[row] for row in keep], len(history),
                                            history_context.shape[1]).to(model.device)
        side["target_context_ids"] = target_context[None].expand(len(keep), -1).to(model.device)
    output = model.score_next(input_ids, memory=_repeat(memory, len(keep)), **side)
    scores, gate = output.scores, output.gate
    return scores.float(), gate[0].float()


def leave_one_out(model, history, item_indices, memory=None, last_n=DEFAULT_LAST_N, context=None):
    """How much deleting each of the last `last_n` events lowers the score of each item (catalog indices).

    Returns the positions of those events in `history`, the score drops `[len(positions), len(item_indices)]` and
    the gate of the whole history. A history of one event has nothing to delete: no positions.
    """
    positions = list(range(max(len(history) - last_n, 0), len(history))) if len(history) > 1 else []
    scores, gate = score_without(model, history, [{p} for p in positions], memory, context)
    items = torch.as_tensor(item_indices, dtype=torch.long, device=scores.device)
    return positions, scores[:1, items] - scores[1:, items], gate


@torch.no_grad()
def scenario_influence(model, history, item_indices, context, memory=None):
    """`(scenario name, score changes [len(item_indices)])`: each item's score where it will be shown minus its
    score with the target scenario unknown (history unchanged). None without a target scenario."""
    config = model.config
    if config.scenario_feature is None or context is None:
        return None
    history_context, target_context = context
    column = config.scenario_index
    scenario_id = int(target_context[column])
    if scenario_id == 0:
        return None
    unknown = target_context.clone()
    unknown[column] = 0
    items = torch.as_tensor(item_indices, dtype=torch.long)
    scores = []
    for target in (target_context, unknown):
        row, _ = score_without(model, history, [], memory, (history_context, target))
        scores.append(row[0, items.to(row.device)].cpu())
    return config.context_vocab[config.scenario_feature][scenario_id - 1], scores[0] - scores[1]


def item_name(catalog, index):
    """An item as people name it: its title, with the year when the catalog has one ("Star Wars (1977)")."""
    name = catalog.titles[index] or catalog.item_ids[index]
    years = catalog.attributes.get("year")
    year = years[index] if years else None
    return f"{name} ({year})" if year not in (None, "") else name


def _join(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reason(recent, earlier, verb="watched"):
    """One line from the drivers' names, e.g. "Because you recently watched Star Wars (1977) and Alien (1979)"."""
    parts = [f"recently {verb} {_join(recent)}"] if recent else []
    parts += [f"{verb} {_join(earlier)} earlier"] if earlier else []
    return "Because you " + ", and ".join(parts) if parts else None


def explain_recommendations(model, history, item_indices, memory=None, last_n=DEFAULT_LAST_N,
                            num_drivers=DEFAULT_NUM_DRIVERS, verb="watched", context=None):
    """An explanation per recommended item (catalog indices) for one user's `history` (item tokens, oldest first).

    Each is `{"long_term_share", "drivers", "reason"}`: the gate at the predicting position; up to `num_drivers`
    distinct history items whose deletion lowers the item's score most (`item_id`, `title`, `score_drop`,
    `events_ago`, 0 being the latest), only those whose deletion lowers it at all; and a one-line reason ("recently"
    for drivers in the short segment, "earlier" for older ones). With `memory` (from
    `lsrec_hf.inference.user_state.segment_and_memory`), `history` is the short segment read after it, and the older past
    stays as it is. Needs the model's catalog. With `context` (see `score_without`) and a model that knows scenarios,
    each explanation also has `"scenario": {"name", "score_change"}`: how much showing the item in the target
    scenario changed its score (against an unknown scenario), and the reason says so.
    """
    catalog = model.catalog
    positions, drops, gate = leave_one_out(model, history, item_indices, memory, last_n, context)
    influence = scenario_influence(model, history, item_indices, context, memory)
    short = short_segment_length(model.config)
    explanations = []
    for column in range(len(item_indices)):
        drivers, seen, recent, earlier = [], set(), [], []
        for row in drops[:, column].argsort(descending=True).tolist():
            if drops[row, column] <= 0 or len(drivers) == num_drivers:
                break
            index = to_indices(history[positions[row]])
            if index in seen:  # an item seen twice is one driver, counted at its strongest event
                continue
            seen.add(index)
            events_ago = len(history) - 1 - positions[row]
            drivers.append({"item_id": catalog.item_ids[index], "title": catalog.titles[index],
                            "score_drop": drops[row, column].item(), "events_ago": events_ago})
            (recent if events_ago < short else earlier).append(item_name(catalog, index))
        explanation = {"long_term_share": gate.item(), "drivers": drivers, "reason": reason(recent, earlier, verb)}
        if influence is not None:
            name, change = influence[0], influence[1][column].item()
            explanation["scenario"] = {"name": name, "score_change": change}
            said = f"shown in {name!r}, which {'raises' if change >= 0 else 'lowers'} its score by {abs(change):.2f}"
            explanation["reason"] = f"{explanation['reason']}; {said}" if explanation["reason"] else said.capitalize()
        explanations.append(explanation)
    return explanations


def deletion_test(model, histories, top_k=1, n_remove=3, seed=0, last_n=DEFAULT_LAST_N):
    """Faithfulness of the explanations: the fraction of (user, recommended item) pairs where deleting the
    `n_remove` events with the largest leave-one-out drops lowers the item's score more than deleting `n_remove`
    random events among the same last `last_n`.

    `histories` are lists of item tokens; the items tested are each user's `top_k` (history excluded). Users with
    no more than `n_remove` events in that window are skipped (a random choice could not differ).
    """
    rng = random.Random(seed)
    wins = trials = 0
    for history in histories:
        history = list(history)
        if min(len(history), last_n) <= n_remove:
            continue
        scores, _ = score_without(model, history, [])
        scores = mask_history(scores, torch.as_tensor([history], device=scores.device))
        top = scores[0].topk(top_k).indices.tolist()
        positions, drops, _ = leave_one_out(model, history, top, last_n=last_n)
        removals = []
        for column in range(len(top)):
            explained = drops[:, column].topk(n_remove).indices.tolist()
            removals += [{positions[row] for row in explained}, set(rng.sample(positions, n_remove))]
        scores, _ = score_without(model, history, removals)
        for column, item in enumerate(top):
            explained_drop = scores[0, item] - scores[1 + 2 * column, item]
            random_drop = scores[0, item] - scores[2 + 2 * column, item]
            wins += bool(explained_drop > random_drop)
            trials += 1
    return wins / max(trials, 1)


__all__ = ["explain_recommendations", "deletion_test", "leave_one_out", "score_without", "reason", "item_name"]
