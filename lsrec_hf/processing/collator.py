"""Batches of user histories as [long history | short segment] token tensors.

Histories are left-padded to a multiple of `segment_length`, so the last `segment_length` columns are the
short segment and the columns before them are the long history, in chunks of the same length.
"""

import math
import random

import numpy as np
import torch
from torch.utils.data import Sampler

from .context import target_scenario_ids
from .tokens import MASK_TOKEN_ID, PAD_TOKEN_ID, to_indices, to_tokens


def pad_left(sequences, length, value):
    """`[len(sequences), length]` int64 tensor, each sequence right-aligned (most recent event last)."""
    out = torch.full((len(sequences), length), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, length - len(seq):] = torch.as_tensor(seq[-length:], dtype=torch.long)
    return out


def segment_aligned_length(longest, segment_length):
    return max(1, math.ceil(longest / segment_length)) * segment_length


def pad_left_rows(arrays, length, width):
    """`[len(arrays), length, width]` int64 tensor of `[n, width]` arrays, right-aligned, zero-padded."""
    out = torch.zeros((len(arrays), length, width), dtype=torch.long)
    for row, array in enumerate(arrays):
        if array is not None and len(array):
            out[row, length - min(len(array), length):] = torch.as_tensor(array[-length:], dtype=torch.long)
    return out


class TrainingCollator:
    """Turns training sequences (catalog indices) into `input_ids`, `attention_mask` and `labels`.

    causal: input = events[:-1], label at each position = the next event (SASRec).
    cloze: a random `mask_prob` of the events (at least one) become [MASK] and are the labels (BERT4Rec).
    A sequence may come as `(items, context)` with `[events, features]` side-feature ids: then the batch also has
    `context_ids` and, with `scenario_index` (the scenario's column), `target_scenario_ids`: the scenario of the
    event each position predicts (causal: the next event's; cloze: its own, also where it is masked).
    With several processes every rank pads to the same length (the longest user of the whole batch) and
    takes its share of rows, so all ranks run the same number of segment steps.
    """

    def __init__(self, segment_length, objective="causal", mask_prob=0.2, max_length=None,
                 num_processes=1, process_index=0, scenario_index=None):
        self.segment_length = segment_length
        self.objective = objective
        self.mask_prob = mask_prob
        self.max_length = max_length
        self.num_processes = num_processes
        self.process_index = process_index
        self.scenario_index = scenario_index

    def __call__(self, sequences):
        contexts = None
        if isinstance(sequences[0], tuple):
            sequences, contexts = [items for items, _ in sequences], [context for _, context in sequences]
            if all(context is None for context in contexts):
                contexts = None
        if self.max_length:
            keep = self.max_length + (self.objective == "causal")
            sequences = [seq[-keep:] for seq in sequences]
            contexts = contexts and [context[-keep:] for context in contexts]
        causal = self.objective == "causal"
        inputs = [seq[:-1] for seq in sequences] if causal else sequences
        targets = [seq[1:] for seq in sequences] if causal else sequences
        length = segment_aligned_length(max(len(seq) for seq in inputs), self.segment_length)
        tokens = to_tokens(pad_left(inputs, length, to_indices(PAD_TOKEN_ID)))
        attention_mask = tokens != PAD_TOKEN_ID
        labels = pad_left(targets, length, -100)
        if self.objective == "cloze":
            masked = (torch.rand(tokens.shape) < self.mask_prob) & attention_mask
            # every user predicts at least one item: mask the last event where the draw masked none
            none = ~masked.any(1)
            masked[none, -1] = attention_mask[none, -1]
            labels = labels.masked_fill(~masked, -100)
            tokens = tokens.masked_fill(masked, MASK_TOKEN_ID)
        batch = {"input_ids": tokens, "attention_mask": attention_mask, "labels": labels}
        if contexts is not None:
            width = next(c for c in contexts if c is not None).shape[1]
            batch["context_ids"] = pad_left_rows([c[:-1] if causal else c for c in contexts], length, width)
            if self.scenario_index is not None:
                last = torch.as_tensor(np.stack([c[-1] if c is not None and len(c) else np.zeros(width, dtype=np.int64)
                                                 for c in contexts]), dtype=torch.long)
                batch["target_scenario_ids"] = target_scenario_ids(batch["context_ids"], last, self.scenario_index,
                                                                   causal)
        rows = slice(self.process_index, None, self.num_processes)
        return {key: value[rows] for key, value in batch.items()}


class EvaluationCollator:
    """Histories and held-out targets: `input_ids`, `attention_mask`, `targets` (catalog indices).

    Examples are `(history, target)` or `(history, target, history_context, target_context)`; with side features
    the batch also has `context_ids` `[B, L, F]` and `target_context_ids` `[B, F]`.
    """

    def __init__(self, segment_length, max_length=None):
        self.segment_length = segment_length
        self.max_length = max_length

    def __call__(self, examples):
        histories = [example[0] for example in examples]
        if self.max_length:
            histories = [h[-self.max_length:] for h in histories]
        length = segment_aligned_length(max(len(h) for h in histories), self.segment_length)
        tokens = to_tokens(pad_left(histories, length, to_indices(PAD_TOKEN_ID)))
        batch = {
            "input_ids": tokens,
            "attention_mask": tokens != PAD_TOKEN_ID,
            "targets": torch.tensor([example[1] for example in examples], dtype=torch.long),
        }
        if len(examples[0]) > 2 and examples[0][3] is not None:
            target_context = torch.as_tensor(np.stack([example[3] for example in examples]), dtype=torch.long)
            batch["context_ids"] = pad_left_rows([example[2] for example in examples], length, target_context.shape[1])
            batch["target_context_ids"] = target_context
        return batch


class LengthBucketSampler(Sampler):
    """Batches of users with similar history lengths (little padding, few idle chunks), in random order.

    With `bucket` (the segment length), users are grouped by the number of chunks their history fills and drawn at
    random within a group: no more padding (a batch is padded to whole segments anyway), but no batch of users of
    one exact length either. Without it, users are sorted by their exact length.
    With `weights` (one per user), each epoch draws as many users as there are, with replacement, in proportion
    to them (domain-balanced multi-domain training). Yields global batches of `batch_size` indices; ranks split
    rows in the collator.
    """

    def __init__(self, lengths, batch_size, shuffle=True, seed=0, min_batch_size=1, bucket=None, weights=None):
        self.bucket = bucket
        self.weights = None if weights is None else list(weights)
        self.lengths = list(lengths) if bucket is None else [math.ceil(length / bucket) for length in lengths]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.min_batch_size = min_batch_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _batches(self):
        rng = random.Random(self.seed + self.epoch)
        users = range(len(self.lengths))
        if self.weights is not None:  # an epoch of as many draws, with replacement, in proportion to the weights
            users = rng.choices(users, weights=self.weights, k=len(self.lengths))
        # sort by length with random tie-breaks so batches differ from epoch to epoch
        keys = [(self.lengths[i], rng.random() if self.shuffle else 0.0, i) for i in users]
        order = [i for _, _, i in sorted(keys)]
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = [b for b in batches if len(b) >= self.min_batch_size]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        return len(self._batches())
