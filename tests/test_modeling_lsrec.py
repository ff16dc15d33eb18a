import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

import lsrec_hf
from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation

NUM_ITEMS = 40


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    settings = dict(num_items=NUM_ITEMS, content_dim=8, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                    num_hidden_layers=2, segment_length=4, memory_length=8, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
    settings.update(overrides)
    model = LSRecForSequentialRecommendation(LSRecConfig(**settings)).eval()
    if model.config.use_content:
        model.model.embeddings.content_embeddings.normal_()
    return model


def random_history(batch=3, length=11, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, NUM_ITEMS + 2, (batch, length), generator=generator)


def with_segment(model, segment_length, memory_length):
    """The same weights under another chunking."""
    config = LSRecConfig(**{**model.config.to_dict(), "segment_length": segment_length,
                            "memory_length": memory_length})
    other = LSRecForSequentialRecommendation(config).eval()
    other.load_state_dict(model.state_dict())
    return other


@pytest.mark.parametrize("memory", ["long+short", "long"])
def test_chunked_history_equals_direct_attention_when_memory_covers_it(memory):
    # Causal attention + memory holding every earlier event: the XL recurrence is exactly full attention.
    model = make_model(memory=memory, segment_length=4, memory_length=12)
    direct = with_segment(model, segment_length=12, memory_length=12)
    ids = random_history(length=12)
    chunked_out = model.model.encode(ids)
    direct_out = direct.model.encode(ids)
    torch.testing.assert_close(chunked_out.last_hidden_state, direct_out.last_hidden_state[:, -4:])
    torch.testing.assert_close(chunked_out.user_state, direct_out.user_state[:, -4:])


def test_bounded_memory_keeps_only_memory_length_states():
    model = make_model(segment_length=4, memory_length=6)
    output = model.model.encode(random_history(length=40))
    assert all(h.shape[1] == 6 for h in output.memory.hidden)
    assert output.memory.mask.shape[1] == 6
    assert torch.equal(output.memory.long_count, torch.full((3,), 40.0))


def test_bounded_memory_differs_from_full_attention_beyond_its_reach():
    model = make_model(segment_length=4, memory_length=4, num_hidden_layers=1)
    direct = with_segment(model, segment_length=12, memory_length=0)
    ids = random_history(length=12)
    assert not torch.allclose(model.model.encode(ids).last_hidden_state, direct.model.encode(ids).last_hidden_state[:, -4:])


def test_causal_states_do_not_see_future_events():
    model = make_model(objective="causal", memory="short", segment_length=8)
    ids = random_history(length=8)
    changed = ids.clone()
    changed[:, 5] = (changed[:, 5] - 2 + 1) % NUM_ITEMS + 2
    before, after = model.model(ids).last_hidden_state, model.model(changed).last_hidden_state
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_cloze_states_see_both_directions():
    model = make_model(objective="cloze", memory="short", segment_length=8)
    ids = random_history(length=8)
    changed = ids.clone()
    changed[:, 6] = (changed[:, 6] - 2 + 1) % NUM_ITEMS + 2
    assert not torch.allclose(model.model(ids).last_hidden_state[:, :6], model.model(changed).last_hidden_state[:, :6])


@pytest.mark.parametrize("objective", ["causal", "cloze"])
def test_left_padding_does_not_change_scores(objective):
    model = make_model(objective=objective)
    ids = random_history(batch=1, length=7)
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), ids], dim=1)
    torch.testing.assert_close(model.score_next(ids)[0], model.score_next(padded)[0])


def test_streaming_new_events_through_memory_equals_encoding_everything():
    model = make_model(segment_length=4, memory_length=8)
    ids = random_history(length=16)
    state = model.model.encode(ids[:, :8]).memory  # chunk-aligned prefix
    streamed = model.model.encode(ids[:, 8:], memory=state)
    torch.testing.assert_close(streamed.user_state, model.model.encode(ids).user_state)


def test_gate_reports_the_memory_mode():
    ids = random_history(length=10)
    assert torch.all(make_model(memory="short").score_next(ids)[1] == 0)
    assert torch.all(make_model(memory="long").score_next(ids)[1] == 1)
    gate = make_model(memory="long+short").score_next(ids)[1]
    assert torch.all((gate > 0) & (gate < 1))


def test_short_memory_ignores_events_before_the_segment():
    model = make_model(memory="short", segment_length=4)
    ids = random_history(length=10)
    changed = ids.clone()
    changed[:, 0] = (changed[:, 0] - 2 + 1) % NUM_ITEMS + 2
    torch.testing.assert_close(model.score_next(ids)[0], model.score_next(changed)[0])
    long_model = make_model(memory="long+short", segment_length=4)
    assert not torch.allclose(long_model.score_next(ids)[0], long_model.score_next(changed)[0])


def test_text_only_item_is_scored_through_its_text():
    model = make_model(use_item_ids=False)
    assert model.model.embeddings.item_ids is None
    ids = random_history(batch=1, length=6)
    before = model.score_next(ids)[0][0, 7].clone()
    model.model.embeddings.content_embeddings[7] += 1.0
    after = model.score_next(ids)[0][0, 7]
    assert torch.isfinite(after) and not torch.isclose(before, after)


def test_item_id_dropout_leaves_ids_out_in_training_only():
    model = make_model(item_id_dropout=1.0)
    embeddings = model.model.embeddings
    items = torch.arange(NUM_ITEMS)
    text_alone = embeddings.text_proj(embeddings.content_embeddings)
    with_ids = text_alone + embeddings.item_ids.weight
    torch.testing.assert_close(embeddings.item_representations(items), with_ids)  # eval: every id is used
    model.train()
    torch.testing.assert_close(embeddings.item_representations(items), text_alone)
    torch.testing.assert_close(embeddings.item_representations(), text_alone)  # the output layer's catalog too
    model.model.embeddings.item_id_dropout = 0.5
    torch.manual_seed(0)
    kept = (embeddings.item_representations(items) - text_alone).abs().sum(-1) > 0
    assert 0 < kept.sum() < NUM_ITEMS  # some items keep their id, some are their text alone
    with pytest.raises(ValueError, match="item_id_dropout needs both"):
        LSRecConfig(num_items=5, content_dim=0, use_content=False, item_id_dropout=0.5)


def test_id_only_model_has_no_content_buffer():
    model = make_model(use_content=False, content_dim=0)
    assert model.model.embeddings.text_proj is None
    assert "model.embeddings.content_embeddings" not in model.state_dict()
    assert torch.isfinite(model.score_next(random_history())[0]).all()


@pytest.mark.parametrize("objective", ["causal", "cloze"])
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_loss_is_finite_and_trains_every_part(objective, loss):
    model = make_model(objective=objective, loss=loss, num_negatives=16).train()
    ids = random_history(length=4)
    labels = torch.randint(0, NUM_ITEMS, ids.shape)
    labels[0] = -100  # a user with nothing to predict in this segment
    memory = model.model.encode(random_history(length=4)).memory
    output = model(ids, labels=labels, memory=memory)
    assert output.logits is None and torch.isfinite(output.loss)
    output.loss.backward()
    for name in ["model.embeddings.text_proj.weight", "model.gate.weight", "model.encoder.layers.0.attention.q_proj.weight"]:
        assert model.get_parameter(name).grad.abs().sum() > 0, name


@pytest.mark.parametrize("proposal", ["uniform", "popularity"])
def test_sampled_softmax_estimates_the_full_normaliser_without_bias(proposal):
    # exp(sampled loss - full loss) is estimate / true normaliser: 1 on average, whatever the proposal
    model = make_model(loss="sampled", num_negatives=8)
    if proposal == "popularity":
        model.set_item_frequencies(torch.arange(NUM_ITEMS) ** 2)  # far from uniform
    states = model.model.encode(random_history(batch=4, length=5)).user_state[:, -1]
    targets = torch.tensor([0, 5, 17, 39])
    with torch.no_grad():
        full = F.cross_entropy(model.item_scores(states), targets, reduction="none")
        ratios = torch.stack([torch.exp(torch.stack([model._sampled_softmax_loss(s[None], t[None])
                                                     for s, t in zip(states, targets)]) - full)
                              for _ in range(3000)])
    assert ratios.mean(0).sub(1).abs().max() < 0.05


def test_mixed_negatives_estimate_the_full_normaliser_without_bias_when_targets_follow_the_data():
    # in-batch negatives are the other positions' targets, drawn from the data (here: from q); plus uniform draws
    model = make_model(loss="sampled", num_negatives=4, negative_sampling="mixed")
    model.set_item_frequencies(torch.arange(NUM_ITEMS) ** 2)
    states = model.model.encode(random_history(batch=6, length=5)).user_state[:, -1]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        normaliser = torch.logsumexp(model.item_scores(states), dim=1)
        ratios = []
        for _ in range(4000):
            targets = torch.multinomial(model.sampling_probs, len(states), replacement=True, generator=generator)
            logits = model._sampled_logits(states, targets)
            ratios.append(torch.exp(torch.logsumexp(logits, dim=1) - normaliser))  # estimate / true normaliser
    assert torch.stack(ratios).mean(0).sub(1).abs().max() < 0.05


def test_mixed_negatives_are_the_other_positions_targets_and_uniform_draws():
    model = make_model(loss="sampled", num_negatives=2, negative_sampling="mixed")
    model.set_item_frequencies(torch.arange(NUM_ITEMS))
    states = model.model.encode(random_history(batch=3, length=4)).user_state[:, -1]
    targets = torch.tensor([3, 7, 11])
    with torch.no_grad():
        logits = model._sampled_logits(states, targets)
        scores = model.item_scores(states)
    assert logits.shape == (3, 1 + 3 + 2)  # the target, the batch's 3 targets, 2 uniform draws
    assert logits[0, 0] == pytest.approx(scores[0, 3].item(), abs=1e-5)
    assert logits[0, 1] == float("-inf")  # its own target among the in-batch negatives: an accidental hit
    expected_count = 2 * model.sampling_probs[7] + 2 / NUM_ITEMS
    assert logits[0, 2] == pytest.approx((scores[0, 7] - torch.log(expected_count)).item(), abs=1e-5)
    with pytest.raises(ValueError, match="negative_sampling"):
        make_model(negative_sampling="in-batch")


def test_segment_of_pure_padding_gives_zero_loss_not_nan():
    model = make_model().train()
    ids = torch.zeros(2, 4, dtype=torch.long)
    output = model(ids, labels=torch.full((2, 4), -100))
    assert output.loss.item() == 0.0


def test_save_and_auto_load_round_trip(tmp_path):
    model = make_model()
    model.catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)], [f"title {i}" for i in range(NUM_ITEMS)],
                                [f"text {i}" for i in range(NUM_ITEMS)])
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "catalog.json"} <= set(os.listdir(tmp_path))
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in os.listdir(tmp_path))
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LSRecConfig)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LSRecForSequentialRecommendation)
    ids = random_history()
    torch.testing.assert_close(model.score_next(ids)[0], loaded.score_next(ids)[0])
    torch.testing.assert_close(loaded.model.embeddings.content_embeddings, model.model.embeddings.content_embeddings)
    assert loaded.catalog.item_ids == model.catalog.item_ids


def test_checkpoint_with_the_output_bias_under_its_old_key_loads_it(tmp_path):
    from safetensors.torch import load_file, save_file

    model = make_model()
    with torch.no_grad():
        model.output_bias.bias.normal_()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["output_bias"] = weights.pop("output_bias.bias")  # the layout of earlier checkpoints
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded, info = LSRecForSequentialRecommendation.from_pretrained(tmp_path, output_loading_info=True)
    torch.testing.assert_close(loaded.output_bias.bias, model.output_bias.bias)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_package_version_is_the_installed_distributions():
    import tomllib
    from importlib import metadata

    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f)["project"]["version"]
    assert lsrec_hf.__version__ == metadata.version("lsrec_hf") == declared


def test_without_output_bias_scores_are_user_state_times_item_vectors_and_the_bias_learns_nothing():
    model = make_model(use_output_bias=False).train()
    with torch.no_grad():
        model.output_bias.bias.fill_(5.0)  # would shift every score if it were used
    ids = random_history()
    labels = torch.randint(0, NUM_ITEMS, ids.shape)
    model(input_ids=ids, labels=labels).loss.backward()
    assert model.output_bias.bias.grad is None
    model.eval()
    state = model.next_user_state(ids)[0]
    expected = state @ model.model.embeddings.item_representations().T
    torch.testing.assert_close(model.score_next(ids).scores, expected)
    with_bias = make_model(use_output_bias=True)
    with torch.no_grad():
        with_bias.output_bias.bias.fill_(5.0)
    torch.testing.assert_close(with_bias.score_next(ids).scores, model.score_next(ids).scores + 5.0)


def test_absolute_positions_count_from_the_segment_end():
    model = make_model(absolute_positions=True, memory="short", segment_length=6)
    ids = random_history(length=4)
    padded = torch.cat([torch.zeros(3, 2, dtype=torch.long), ids], dim=1)  # left padding moves no event
    torch.testing.assert_close(model.score_next(ids).scores, model.score_next(padded).scores)
    with torch.no_grad():
        model.model.embeddings.positions.weight[0].add_(1.0)  # the most recent event's position
    changed = model.score_next(ids).scores
    assert not torch.allclose(changed, model.score_next(ids[:, :-1]).scores)
    assert not torch.allclose(changed, make_model(absolute_positions=True, memory="short", segment_length=6)
                              .score_next(ids).scores)


def test_item_tokens_skip_the_layer_norm_when_asked():
    model = make_model(embedding_layer_norm=False)
    assert isinstance(model.model.embeddings.layer_norm, torch.nn.Identity)
    ids = random_history()
    tokens = model.model.embeddings(ids)
    raw = model.model.embeddings.item_representations(ids - 2)
    torch.testing.assert_close(tokens, raw)
    assert isinstance(make_model().model.embeddings.layer_norm, torch.nn.LayerNorm)


def test_sasrec_block_layout_is_sasrecs_layer_with_keys_from_the_unnormalised_memory_and_segment():
    model = make_model(block_layout="sasrec", embedding_layer_norm=False)
    embeddings, layer = model.model.embeddings, model.model.encoder.layers[0]
    ids = random_history(length=4)
    tokens = embeddings(ids)
    torch.testing.assert_close(tokens, embeddings.item_representations(ids - 2) * 16 ** 0.5)  # sqrt(hidden)
    memory = torch.randn(3, 5, 16) * 3.0
    bias = torch.zeros(3, 2, 4, 9)
    query = layer.attention_norm(tokens)
    attended = query + layer.attention(query, torch.cat([memory, tokens], dim=1), bias)
    normed = layer.ffn_norm(attended)
    expected = normed + layer.fc_out(layer.act(layer.fc_in(normed)))
    torch.testing.assert_close(layer(tokens, memory, bias), expected)
    # pre-norm layers read a normalised copy of [memory ; segment]: scaling the memory changes nothing there
    pre_norm = make_model().model.encoder.layers[0]
    torch.testing.assert_close(pre_norm(tokens, memory, bias), pre_norm(tokens, memory * 2.0, bias))
    assert not torch.allclose(layer(tokens, memory, bias), layer(tokens, memory * 2.0, bias))


def test_loss_excludes_history_drops_seen_items_from_the_softmax_but_keeps_a_repeated_target():
    model = make_model(loss_excludes_history=True, memory="short", segment_length=4)
    ids = torch.tensor([[2 + 5, 2 + 6, 2 + 7, 2 + 8]])
    labels = torch.tensor([[6, 7, 5, 9]])  # position 2 predicts item 5 again: a repeat
    earlier = torch.tensor([[0, 2 + 30]])  # padding, then item 30 in an earlier segment
    loss = model(input_ids=ids, labels=labels, earlier_ids=earlier).loss
    scores = model(input_ids=ids).logits[0].float()
    expected = []
    for position, target in enumerate(labels[0].tolist()):
        seen = {30, *[token - 2 for token in ids[0, :position + 1].tolist()]} - {target}
        kept = scores[position].clone()
        kept[sorted(seen)] = float("-inf")
        expected.append(F.cross_entropy(kept[None], torch.tensor([target])))
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    plain = make_model(memory="short", segment_length=4, loss_excludes_history=False)(input_ids=ids, labels=labels).loss
    assert loss < plain  # fewer negatives


def test_seen_items_of_every_selected_position_match_the_history_sets():
    model = make_model(loss_excludes_history=True)
    num_items = model.config.num_items
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 2 + num_items, (3, 9), generator=generator)
    ids[0, :3] = 0  # padding
    ids[1, 4] = 1  # a mask token
    ids[2, 5:] = ids[2, :4].repeat(2)[:4]  # repeats
    earlier = torch.tensor([[0, 0, 0], [2 + 3, 2 + 4, 0], [2 + 7, 2 + 7, 2 + 1]])
    selected = torch.rand(3, 9, generator=generator) > 0.3
    seen = model._seen_before(ids, earlier, selected)
    expected = []
    for row, step in selected.nonzero().tolist():
        history = {token - 2 for token in ids[row, :step + 1].tolist() + earlier[row].tolist() if token >= 2}
        expected.append([item in history for item in range(num_items)])
    assert seen.tolist() == expected


def test_sampled_negatives_seen_in_the_history_are_those_of_the_full_mask():
    model = make_model(loss_excludes_history=True, loss="sampled")
    num_items = model.config.num_items
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 2 + num_items, (3, 9), generator=generator)
    ids[0, :3] = 0  # padding
    ids[1, 4] = 1  # a mask token
    earlier = torch.tensor([[0, 0, 0], [2 + 3, 2 + 4, 0], [2 + 7, 2 + 7, 2 + 1]])
    selected = torch.rand(3, 9, generator=generator) > 0.3
    # some in a history, some repeated, the first and the last item
    negatives = torch.tensor([3, 1, 7, 7, 0, num_items - 1, *(ids[2, :3] - 2).tolist()])
    full = model._seen_before(ids, earlier, selected)
    assert model._seen_among(ids, earlier, selected, negatives).tolist() == full[:, negatives].tolist()
    assert model._seen_among(ids, None, selected, negatives).tolist() == \
        model._seen_before(ids, None, selected)[:, negatives].tolist()


def test_the_sampled_softmax_drops_history_negatives_when_the_loss_excludes_history():
    ids = torch.tensor([[2 + 5, 2 + 6, 2 + 7, 2 + 8]])
    labels = torch.tensor([[6, 7, 5, 9]])
    selected = labels != -100
    model = make_model(loss="sampled", loss_excludes_history=True, memory="short", segment_length=4, num_negatives=64)
    model.set_item_frequencies(torch.ones(model.config.num_items))
    states = model.model(ids).user_state[selected]
    torch.manual_seed(3)
    logits = model._sampled_logits(states, labels[selected], (ids, None, selected))
    torch.manual_seed(3)
    negatives = torch.multinomial(model.sampling_probs, 64, replacement=True)  # the same draw
    for position, target in enumerate(labels[0].tolist()):
        seen = {token - 2 for token in ids[0, :position + 1].tolist()} | {target}
        dropped = torch.isinf(logits[position, 1:]).tolist()
        assert dropped == [int(n) in seen for n in negatives]
    assert torch.isfinite(logits[:, 0]).all()  # a repeated target (position 2 predicts item 5) stays the target


def test_from_catalog_sizes_the_model_to_the_catalog_and_copies_its_text_embeddings():
    catalog = ItemCatalog([f"i{n}" for n in range(7)], [f"T{n}" for n in range(7)], [f"text {n}" for n in range(7)])
    content = torch.randn(7, 5)
    model = LSRecForSequentialRecommendation.from_catalog(catalog, content, hidden_size=8, num_attention_heads=2)
    assert (model.config.num_items, model.config.content_dim, model.config.hidden_size) == (7, 5, 8)
    assert model.catalog is catalog and model.config.use_content
    torch.testing.assert_close(model.model.embeddings.content_embeddings, content)
    id_only = LSRecForSequentialRecommendation.from_catalog(catalog)
    assert not id_only.config.use_content and id_only.model.embeddings.text_proj is None
    with pytest.raises(ValueError, match="6 content embeddings for a catalog of 7 items"):
        LSRecForSequentialRecommendation.from_catalog(catalog, torch.randn(6, 5))


def test_standardized_content_uses_the_catalog_statistics_fixed_when_set_and_saved(tmp_path):
    model = make_model(standardize_content=True)
    embeddings = model.model.embeddings
    content = torch.randn(NUM_ITEMS, 8) * torch.linspace(0.1, 3.0, 8) + 5.0  # a common offset, uneven spread
    embeddings.set_content_embeddings(content)
    standardized = (content - content.mean(0)) / content.std(0)
    with torch.no_grad():
        expected = embeddings.text_proj(standardized) + embeddings.item_ids.weight
        assert torch.allclose(embeddings.item_representations(), expected, atol=1e-5)
    model.catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)], [""] * NUM_ITEMS, [""] * NUM_ITEMS)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.model.embeddings.content_mean, content.mean(0))
    # an item added later is scaled by the catalog's statistics, not its own
    grown = ItemCatalog(model.catalog.item_ids + ["new"], [""] * (NUM_ITEMS + 1), [""] * (NUM_ITEMS + 1))
    new_content = torch.full((1, 8), 7.0)
    loaded.extend_catalog(grown, new_content, new_item_init="zero")
    with torch.no_grad():
        new_rep = loaded.model.embeddings.item_representations(torch.tensor([NUM_ITEMS]))
        expected_new = loaded.model.embeddings.text_proj((new_content - content.mean(0)) / content.std(0))
    assert torch.allclose(new_rep, expected_new, atol=1e-5)  # its id embedding starts at zero
    assert torch.equal(loaded.model.embeddings.content_mean, content.mean(0))


def test_mlp_content_adapter_adds_a_feed_forward_reading_of_the_text_to_the_projection(tmp_path):
    model = make_model(content_adapter="mlp", standardize_content=True)
    embeddings = model.model.embeddings
    embeddings.set_content_embeddings(torch.randn(NUM_ITEMS, 8) * 3.0 + 1.0)
    standardized = embeddings.standardized(embeddings.content_embeddings)
    with torch.no_grad():
        mlp = embeddings.text_mlp(standardized)
        assert mlp.abs().max() > 0  # it contributes: the token is not the projection alone
        expected = embeddings.text_proj(standardized) + mlp + embeddings.item_ids.weight
        assert torch.allclose(embeddings.item_representations(), expected, atol=1e-5)
        assert torch.allclose(embeddings.item_representations(torch.tensor([3, 5])), expected[[3, 5]], atol=1e-5)
    # it trains with the rest: the next-item loss reaches its first layer
    history = random_history()
    labels = torch.randint(0, NUM_ITEMS, history.shape, generator=torch.Generator().manual_seed(0))
    model.train()(history, labels=labels).loss.backward()
    assert embeddings.text_mlp[0].weight.grad.abs().sum() > 0
    # and travels with the checkpoint
    model.eval().catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)], [""] * NUM_ITEMS, [""] * NUM_ITEMS)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.content_adapter == "mlp" and LSRecConfig().content_adapter == "linear"
    assert torch.allclose(loaded.score_next(history)[0], model.score_next(history)[0], atol=1e-6)
    assert make_model().model.embeddings.text_mlp is None


def test_a_checkpoint_from_before_standardized_content_loads_as_trained(tmp_path):
    model = make_model(standardize_content=False)
    model.catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)], [""] * NUM_ITEMS, [""] * NUM_ITEMS)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["standardize_content"]  # as a config.json of an earlier version
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.standardize_content is False and LSRecConfig().standardize_content is True
    assert torch.allclose(loaded.eval().score_next(random_history())[0], model.score_next(random_history())[0])


def test_new_items_get_the_id_embedding_and_bias_their_text_predicts():
    # warm ids and biases that are an affine function of the standardized text: the ridge fit recovers it
    model = make_model(standardize_content=True, content_dim=8)
    embeddings = model.model.embeddings
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(NUM_ITEMS, 8, generator=generator) * 2.0 + 1.0
    embeddings.set_content_embeddings(content)
    mapping = torch.randn(8, 16 + 1, generator=generator)  # to the 16-wide ids and the bias
    standardized = lambda c: (c - embeddings.content_mean) * embeddings.content_scale  # noqa: E731
    with torch.no_grad():
        exact = standardized(content) @ mapping + 0.5
        embeddings.item_ids.weight.copy_(exact[:, :-1])
        model.output_bias.bias.copy_(exact[:, -1])
    model.catalog = ItemCatalog([f"i{i}" for i in range(NUM_ITEMS)], [""] * NUM_ITEMS, [""] * NUM_ITEMS)
    new_content = torch.randn(3, 8, generator=generator)
    grown = ItemCatalog(model.catalog.item_ids + ["n0", "n1", "n2"], [""] * (NUM_ITEMS + 3), [""] * (NUM_ITEMS + 3))
    text_init = copy.deepcopy(model)
    text_init.extend_catalog(grown, new_content, ridge=1e-6)
    expected = standardized(new_content) @ mapping + 0.5
    assert torch.allclose(text_init.model.embeddings.item_ids.weight[NUM_ITEMS:], expected[:, :-1], atol=1e-3)
    assert torch.allclose(text_init.output_bias.bias[NUM_ITEMS:], expected[:, -1], atol=1e-3)
    assert torch.equal(text_init.model.embeddings.item_ids.weight[:NUM_ITEMS], exact[:, :-1])  # known items unchanged
    zero_init = copy.deepcopy(model)
    zero_init.extend_catalog(grown, new_content, new_item_init="zero")
    assert zero_init.model.embeddings.item_ids.weight[NUM_ITEMS:].abs().max() == 0
    assert torch.allclose(zero_init.output_bias.bias[NUM_ITEMS:], exact[:, -1].mean().expand(3))
    # a heavy penalty shrinks the prediction towards the average item
    shrunk = copy.deepcopy(model)
    shrunk.extend_catalog(grown, new_content, ridge=1e6)
    average = exact.mean(0)
    assert torch.allclose(shrunk.model.embeddings.item_ids.weight[NUM_ITEMS:], average[:-1].expand(3, -1), atol=1e-3)
    with pytest.raises(ValueError, match="new_item_init"):
        copy.deepcopy(model).extend_catalog(grown, new_content, new_item_init="mean")
