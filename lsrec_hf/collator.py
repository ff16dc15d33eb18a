"""Batches of user histories as [long history | short segment] token tensors.

Histories are left-padded to a multiple of `segment_length`, so the last `segment_length` columns are the
short segment and the columns before them are the long history, in chunks of the same length.
"""

import math
import random

import torch
from torch.utils.data import Sampler

from .configuration_lsrec import MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID


def pad_left(sequences, length, value):
    """`[len(sequences), length]` int64 tensor, each sequence right-aligned (most recent event last)."""
    out = torch.full((len(sequences), length), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, length - len(seq):] = torch.as_tensor(seq[-length:], dtype=torch.long)
    return out


def segment_aligned_length(longest, segment_length):
    return max(1, math.ceil(longest / segment_length)) * segment_length


class TrainingCollator:
    """Turns training sequences (catalog indices) into `input_ids`, `attention_mask` and `labels`.

    causal: input = events[:-1], label at each position = the next event (SASRec).
    cloze: a random `mask_prob` of the events (at least one) become [MASK] and are the labels (BERT4Rec).
    With several processes every rank pads to the same length (the longest user of the whole batch) and
    takes its share of rows, so all ranks run the same number of segment steps.
    """

    def __init__(self, segment_length, objective="causal", mask_prob=0.2, max_length=None,
                 num_processes=1, process_index=0):
        self.segment_length = segment_length
        self.objective = objective
        self.mask_prob = mask_prob
        self.max_length = max_length
        self.num_processes = num_processes
        self.process_index = process_index

    def __call__(self, sequences):
        if self.max_length:
            sequences = [seq[-(self.max_length + (self.objective == "causal")):] for seq in sequences]
        if self.objective == "causal":
            inputs = [seq[:-1] for seq in sequences]
            targets = [seq[1:] for seq in sequences]
        else:
            inputs = targets = sequences
        length = segment_aligned_length(max(len(seq) for seq in inputs), self.segment_length)
        tokens = pad_left(inputs, length, PAD_TOKEN_ID - NUM_SPECIAL_TOKENS) + NUM_SPECIAL_TOKENS
        attention_mask = tokens != PAD_TOKEN_ID
        labels = pad_left(targets, length, -100)
        if self.objective == "cloze":
            masked = (torch.rand(tokens.shape) < self.mask_prob) & attention_mask
            # every user predicts at least one item: mask the last event where the draw masked none
            none = ~masked.any(1)
            masked[none, -1] = attention_mask[none, -1]
            labels = labels.masked_fill(~masked, -100)
            tokens = tokens.masked_fill(masked, MASK_TOKEN_ID)
        rows = slice(self.process_index, None, self.num_processes)
        return {"input_ids": tokens[rows], "attention_mask": attention_mask[rows], "labels": labels[rows]}


class EvaluationCollator:
    """Histories and held-out targets: `input_ids`, `attention_mask`, `targets` (catalog indices)."""

    def __init__(self, segment_length, max_length=None):
        self.segment_length = segment_length
        self.max_length = max_length

    def __call__(self, examples):
        histories = [history for history, _ in examples]
        if self.max_length:
            histories = [h[-self.max_length:] for h in histories]
        length = segment_aligned_length(max(len(h) for h in histories), self.segment_length)
        tokens = pad_left(histories, length, PAD_TOKEN_ID - NUM_SPECIAL_TOKENS) + NUM_SPECIAL_TOKENS
        return {
            "input_ids": tokens,
            "attention_mask": tokens != PAD_TOKEN_ID,
            "targets": torch.tensor([target for _, target in examples], dtype=torch.long),
        }


class LengthBucketSampler(Sampler):
    """Batches of users with similar history lengths (little padding, few idle chunks), in random order.

    Yields global batches of `batch_size` indices; ranks split rows in the collator.
    """

    def __init__(self, lengths, batch_size, shuffle=True, seed=0, min_batch_size=1):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.min_batch_size = min_batch_size
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _batches(self):
        rng = random.Random(self.seed + self.epoch)
        # sort by length with random tie-breaks so batches differ from epoch to epoch
        jitter = [rng.random() if self.shuffle else 0.0 for _ in self.lengths]
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], jitter[i]))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = [b for b in batches if len(b) >= self.min_batch_size]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        return len(self._batches())
