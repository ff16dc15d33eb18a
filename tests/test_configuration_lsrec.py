"""LSRecConfig: bad settings are refused by name, and a config survives a save and an AutoConfig load."""

import pytest
from transformers import AutoConfig

from lsrec_hf import LSRecConfig


@pytest.mark.parametrize("bad, message", [
    ({"memory": "medium"}, "memory must be one of"),
    ({"objective": "mlm"}, "objective must be one of"),
    ({"use_item_ids": False, "use_content": False}, "needs item ids or content"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "divisible"),
    ({"item_id_dropout": 1.5}, "item_id_dropout must be in"),
    ({"block_layout": "post-norm"}, "block_layout must be one of"),
    ({"content_adapter": "moe"}, "content_adapter must be one of"),
])
def test_config_rejects_bad_settings_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        LSRecConfig(num_items=5, **bad)


def test_loss_excludes_history_needs_the_causal_objective_and_is_on_unset_with_either_loss():
    with pytest.raises(ValueError, match="loss_excludes_history needs"):
        LSRecConfig(num_items=10, loss_excludes_history=True, objective="cloze")
    assert LSRecConfig(num_items=10, loss_excludes_history=True, loss="sampled").loss_excludes_history
    assert LSRecConfig(num_items=10).loss_excludes_history
    assert LSRecConfig(num_items=10, loss="sampled").loss_excludes_history
    assert not LSRecConfig(num_items=10, objective="cloze").loss_excludes_history


def test_config_round_trips_through_save_and_auto_config(tmp_path):
    config = LSRecConfig(num_items=7, memory="short", block_layout="sasrec", absolute_positions=True,
                         loss_excludes_history=True, intermediate_size=64)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is LSRecConfig
    assert settings(loaded) == settings(config)


def settings(config):
    """Every setting of a config but the folder it was loaded from."""
    return {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}


@pytest.mark.parametrize("settings_, expected", [
    ({}, True), ({"objective": "cloze"}, False), ({"loss": "sampled"}, True), ({"loss_excludes_history": False}, False),
])
def test_history_leaves_the_training_softmax_wherever_the_loss_allows_unless_asked_not_to(settings_, expected):
    assert LSRecConfig(num_items=5, **settings_).loss_excludes_history is expected
