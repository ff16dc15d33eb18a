import numpy as np
import torch

from lsrec_hf.collator import EvaluationCollator, LengthBucketSampler, TrainingCollator
from lsrec_hf.configuration_lsrec import MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID

SEQUENCES = [np.array([5, 6, 7, 8, 9, 10, 11]), np.array([1, 2, 3])]


def test_causal_labels_are_the_next_event_and_history_is_left_padded_to_whole_segments():
    batch = TrainingCollator(segment_length=4, objective="causal")(SEQUENCES)
    assert batch["input_ids"].shape == (2, 8)  # 6 inputs -> 2 segments of 4
    assert batch["input_ids"][0].tolist() == [0, 0] + [i + NUM_SPECIAL_TOKENS for i in [5, 6, 7, 8, 9, 10]]
    assert batch["labels"][0].tolist() == [-100, -100, 6, 7, 8, 9, 10, 11]
    assert batch["input_ids"][1].tolist() == [0] * 6 + [1 + NUM_SPECIAL_TOKENS, 2 + NUM_SPECIAL_TOKENS]
    assert batch["labels"][1].tolist() == [-100] * 6 + [2, 3]
    assert torch.equal(batch["attention_mask"], batch["input_ids"] != PAD_TOKEN_ID)


def test_cloze_labels_only_masked_positions_and_every_user_predicts_something():
    torch.manual_seed(0)
    batch = TrainingCollator(segment_length=4, objective="cloze", mask_prob=0.3)(SEQUENCES * 20)
    masked = batch["input_ids"] == MASK_TOKEN_ID
    assert torch.equal(masked, batch["labels"] != -100)
    assert masked.any(1).all()
    assert 0.15 < masked.sum() / batch["attention_mask"].sum() < 0.5


def test_max_length_keeps_the_most_recent_events():
    batch = TrainingCollator(segment_length=2, objective="causal", max_length=2)(SEQUENCES)
    assert batch["labels"][0].tolist() == [10, 11]


def test_ranks_get_equal_length_shares_of_a_global_batch():
    shares = [TrainingCollator(4, "causal", num_processes=2, process_index=r)(SEQUENCES) for r in range(2)]
    assert shares[0]["input_ids"].shape == shares[1]["input_ids"].shape == (1, 8)
    assert shares[1]["labels"][0, -1].item() == 3


def test_evaluation_batch_keeps_targets():
    batch = EvaluationCollator(segment_length=4)([(np.array([1, 2]), 7), (np.array([3, 4, 5, 6, 7]), 0)])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["targets"].tolist() == [7, 0]


def test_length_buckets_cover_every_user_once_and_group_similar_lengths():
    lengths = list(range(100))
    sampler = LengthBucketSampler(lengths, batch_size=10, shuffle=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == lengths
    assert all(max(b) - min(b) < 10 for b in batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches
