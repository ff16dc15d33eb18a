import numpy as np
import torch

from lsrec_hf.processing.collator import EvaluationCollator, LengthBucketSampler, TrainingCollator
from lsrec_hf.processing.context import target_scenario_ids
from lsrec_hf.processing.tokens import MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID

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


def test_training_and_inference_give_each_position_the_scenario_of_the_event_it_predicts():
    # events 5..9 with scenarios 1,2,1,3,2 (column 1 of two side features)
    context = np.array([[7, 1], [7, 2], [7, 1], [7, 3], [7, 2]])
    batch = TrainingCollator(segment_length=6, scenario_index=1)([([5, 6, 7, 8, 9], context)])
    real = batch["attention_mask"][0]
    assert batch["target_scenario_ids"][0, real].tolist() == [2, 1, 3, 2]  # the next event's scenario
    # inference: the history's contexts and the context of the event to recommend give the same shift
    shifted = target_scenario_ids(torch.as_tensor(context[None, :-1]), torch.as_tensor(context[None, -1]), 1, True)
    assert shifted[0].tolist() == [2, 1, 3, 2]
    cloze = TrainingCollator(segment_length=6, objective="cloze", scenario_index=1)([([5, 6, 7, 8, 9], context)])
    assert cloze["target_scenario_ids"][0, cloze["attention_mask"][0]].tolist() == [1, 2, 1, 3, 2]  # its own


def test_chunk_buckets_group_by_number_of_chunks_and_mix_lengths_within():
    lengths = [3, 7, 12, 48, 50, 51, 99, 100, 101, 150] * 4
    sampler = LengthBucketSampler(lengths, batch_size=4, shuffle=True, seed=0, bucket=50)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    chunks = [{-(-lengths[i] // 50) for i in b} for b in batches]
    assert sum(len(c) > 1 for c in chunks) <= 3  # a batch spans two chunk counts only where a group ends
    assert any(len(c) == 1 and len({lengths[i] for i in b}) > 1 for b, c in zip(batches, chunks))  # mixed lengths
