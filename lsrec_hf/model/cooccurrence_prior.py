"""What other users took together: each item's training co-occurrence with the user's latest items, added to the
model's scores.

A 64-wide item embedding learns what many users share; an item with a handful of training events barely moves its
row of the table, and its text says what it is, not who bought it beside what. Item-kNN (Sarwar et al., 2001)
remembers exactly that: on Amazon Beauty, where a fifth of the test targets have fewer than 5 training events, the
model scores NDCG@10 0.011 on those targets and item-kNN 0.031. As the wide part of Wide & Deep (Cheng et al., 2016)
memorises the feature crosses that the deep part generalises over, this prior adds the sparse memory to the
transformer's scores:

    weight * sum_p decay^p * sim(h_p, i)

over the user's latest `max_history` events h_0 (the most recent), h_1, ..., with sim the cosine between two items'
sets of training users, each item keeping its `neighbors` most similar items. `decay` weighs the latest events up
(1: the whole window alike). The weight and the decay are chosen on validation after training
(`lsrec_hf.evaluation.cooccurrence_calibration.calibrate_cooccurrence_prior`); weight 0 is among the choices, so
where co-occurrence adds nothing the prior is left out.

Saved beside the weights as `cooccurrence_prior.safetensors`: each item's neighbours and their similarities and, in
the file's metadata, the weight, the decay and the window. Imports nothing of the model's layers.
"""

import os

import numpy as np
import scipy.sparse
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

COOCCURRENCE_PRIOR_NAME = "cooccurrence_prior.safetensors"


def item_neighbors(sequences, num_items, neighbors=100):
    """`(indices, similarities)`, both `[num_items, neighbors]`: each item's most similar items by the cosine between
    their sets of users in `sequences` (per-user arrays of catalog indices), best first; rows with fewer neighbours
    are padded with index 0 and similarity 0 (which adds nothing)."""
    users = [np.unique(np.asarray(s, dtype=np.int64)) for s in sequences]
    rows = np.repeat(np.arange(len(users)), [len(u) for u in users])
    cols = np.concatenate(users) if users else np.zeros(0, dtype=np.int64)
    occurrence = scipy.sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                                         shape=(len(users), num_items))
    co_counts = (occurrence.T @ occurrence).tocsr()  # sparse: the cost follows the pairs that occur
    norms = np.sqrt(np.maximum(np.asarray(occurrence.sum(0)).ravel(), 1.0))
    indices = np.zeros((num_items, neighbors), dtype=np.int64)
    similarities = np.zeros((num_items, neighbors), dtype=np.float32)
    for item in range(num_items):
        start, end = co_counts.indptr[item], co_counts.indptr[item + 1]
        others, counts = co_counts.indices[start:end], co_counts.data[start:end]
        keep = others != item
        others, sims = others[keep], counts[keep] / (norms[item] * norms[others[keep]])
        if len(others) > neighbors:
            top = np.argpartition(-sims, neighbors - 1)[:neighbors]
            others, sims = others[top], sims[top]
        order = np.argsort(-sims, kind="stable")
        indices[item, :len(order)], similarities[item, :len(order)] = others[order], sims[order]
    return torch.as_tensor(indices), torch.as_tensor(similarities)


class CooccurrencePrior:
    """`weight * sum_p decay^p * sim(h_p, i)` over a user's latest `max_history` events (h_0 the most recent).

    neighbor_indices, neighbor_similarities: `[num_items, k]` (`item_neighbors`); weight: the scale beside the model's
    scores; decay: in (0, 1], the factor per step back in the history; max_history: how many latest events count.
    """

    def __init__(self, neighbor_indices, neighbor_similarities, weight=1.0, decay=1.0, max_history=50):
        neighbor_indices = torch.as_tensor(neighbor_indices, dtype=torch.int64)
        neighbor_similarities = torch.as_tensor(neighbor_similarities, dtype=torch.float32)
        if neighbor_indices.ndim != 2 or neighbor_indices.shape != neighbor_similarities.shape:
            raise ValueError(f"CooccurrencePrior: neighbour indices {tuple(neighbor_indices.shape)} and similarities "
                             f"{tuple(neighbor_similarities.shape)} must both be [num_items, neighbors]")
        num_items = neighbor_indices.shape[0]
        if neighbor_indices.numel() and (neighbor_indices.min() < 0 or neighbor_indices.max() >= num_items):
            raise ValueError(f"CooccurrencePrior: neighbour indices must lie in [0, {num_items})")
        if not 0 < decay <= 1:
            raise ValueError(f"CooccurrencePrior: decay must lie in (0, 1], got {decay}")
        if max_history < 1:
            raise ValueError(f"CooccurrencePrior: max_history must be >= 1, got {max_history}")
        self.neighbor_indices, self.neighbor_similarities = neighbor_indices, neighbor_similarities
        self.weight, self.decay, self.max_history = float(weight), float(decay), int(max_history)

    @classmethod
    def from_sequences(cls, sequences, num_items, neighbors=100, weight=1.0, decay=1.0, max_history=50):
        """From per-user arrays of catalog indices (`Splits.train`): the validation and test events never count."""
        return cls(*item_neighbors(sequences, num_items, neighbors), weight, decay, max_history)

    @property
    def num_items(self):
        return self.neighbor_indices.shape[0]

    def with_weights(self, weight, decay):
        """The same neighbours with another weight and decay (no copy of the tables)."""
        return type(self)(self.neighbor_indices, self.neighbor_similarities, weight, decay, self.max_history)

    def extend(self, num_items):
        """Room for items appended to the catalog: they have no training events, so no neighbours."""
        added = num_items - self.num_items
        if added < 0:
            raise ValueError(f"CooccurrencePrior.extend: the catalog cannot shrink ({self.num_items} -> {num_items})")
        pad = self.neighbor_indices.new_zeros(added, self.neighbor_indices.shape[1])
        self.neighbor_indices = torch.cat([self.neighbor_indices, pad])
        self.neighbor_similarities = torch.cat([self.neighbor_similarities, pad.float()])

    def similarity_sums(self, histories):
        """`[len(histories), num_items]` float32: `sum_p decay^p * sim(h_p, i)` per history (catalog indices, oldest
        first; the latest `max_history` count), before the weight."""
        sums = torch.zeros(len(histories), self.num_items)
        rows, items, steps = [], [], []
        for row, history in enumerate(histories):
            latest = np.asarray(history, dtype=np.int64)[::-1][:self.max_history]
            rows.append(np.full(len(latest), row)), items.append(latest), steps.append(np.arange(len(latest)))
        if not histories or not sum(len(i) for i in items):
            return sums
        rows, items, steps = (torch.as_tensor(np.concatenate(a)) for a in (rows, items, steps))
        if items.min() < 0 or items.max() >= self.num_items:
            raise ValueError(f"CooccurrencePrior: history items must be catalog indices in [0, {self.num_items})")
        values = self.neighbor_similarities[items] * (self.decay ** steps.double()).float()[:, None]
        sums.index_put_((rows[:, None].expand_as(values), self.neighbor_indices[items]), values, accumulate=True)
        return sums

    def bias(self, histories):
        """`[len(histories), num_items]` float32: what the prior adds to the model's scores after each history."""
        return self.weight * self.similarity_sums(histories)

    def save_pretrained(self, save_directory):
        save_file({"neighbor_indices": self.neighbor_indices.contiguous(),
                   "neighbor_similarities": self.neighbor_similarities.contiguous()},
                  os.path.join(save_directory, COOCCURRENCE_PRIOR_NAME),
                  metadata={"weight": repr(self.weight), "decay": repr(self.decay),
                            "max_history": str(self.max_history)})

    @classmethod
    def from_file(cls, path, num_items):
        """The prior saved at `path`; an `OSError` naming the file when it is not one, or not of this catalog."""
        try:
            with safe_open(path, framework="pt") as f:
                metadata = f.metadata() or {}
                indices, similarities = f.get_tensor("neighbor_indices"), f.get_tensor("neighbor_similarities")
            weight, decay = float(metadata["weight"]), float(metadata["decay"])
            max_history = int(metadata["max_history"])
            prior = cls(indices, similarities, weight, decay, max_history)
        except (SafetensorError, KeyError, ValueError) as error:
            raise OSError(f"{path}: not a co-occurrence prior file ({type(error).__name__}: {error})") from None
        if prior.num_items != num_items:
            raise OSError(f"{path}: a co-occurrence prior of {prior.num_items} items, but the model's catalog has "
                          f"{num_items}")
        return prior

    def __repr__(self):
        return (f"CooccurrencePrior(items={self.num_items}, neighbors={self.neighbor_indices.shape[1]}, "
                f"weight={self.weight:g}, decay={self.decay:g}, max_history={self.max_history})")


__all__ = ["COOCCURRENCE_PRIOR_NAME", "CooccurrencePrior", "item_neighbors"]
