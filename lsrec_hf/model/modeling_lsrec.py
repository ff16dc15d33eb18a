"""LSRec: a sequential recommender with item-text tokens, a Transformer-XL long memory and a gated short segment.

Reads top to bottom as the data flows: item embeddings -> relative position bias -> attention -> layer ->
encoder -> pretrained base -> bare model (one segment, then a whole history chunk by chunk) -> recommendation head.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_lsrec import LSRecConfig
from ..processing.context import target_scenario_ids as target_scenarios
from .hub_io import LSRecHubMixin
from ..processing.tokens import MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID, is_item_token, item_indices_or, to_indices



class LSRecMemory(NamedTuple):
    """What a user's history leaves behind for the next segment (all detached: no gradient flows back).

    hidden: per layer, the inputs of that layer for the last `memory_length` events, `[batch, M, hidden]`.
    mask: which of those M slots hold a real event, `[batch, M]`.
    long_sum / long_count: running sum and count of the top-layer states of every event so far, from which
        the pooled long-term state is read in O(1) memory whatever the history length.
    """

    hidden: tuple
    mask: torch.Tensor
    long_sum: torch.Tensor
    long_count: torch.Tensor


@dataclass
class LSRecModelOutput(ModelOutput):
    r"""
    last_hidden_state (`[batch, seq, hidden]`): top-layer states of the segment (the short-term state).
    user_state (`[batch, seq, hidden]`): the fused state that scores items at each position.
    long_state (`[batch, seq, hidden]`, *optional*): the pooled long-term state at each position.
    gate (`[batch, seq]`): share of the long-term state in `user_state` (0 = all short-term, 1 = all long-term).
    memory (`LSRecMemory`, *optional*): the state to pass with the next segment of the same users.
    """

    last_hidden_state: torch.Tensor | None = None
    user_state: torch.Tensor | None = None
    long_state: torch.Tensor | None = None
    gate: torch.Tensor | None = None
    memory: LSRecMemory | None = None


@dataclass
class LSRecRecommendationOutput(ModelOutput):
    r"""
    loss (*optional*): next-item (causal) or masked-item (cloze) cross-entropy, returned when `labels` is given.
    logits (`[batch, seq, num_items]`, *optional*): scores of every catalog item at every position; only
        returned without `labels` (training computes scores at the labelled positions only).
    gate (`[batch, seq]`): long-term share of each position's user state.
    memory (`LSRecMemory`, *optional*): the state to pass with the next segment.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    gate: torch.Tensor | None = None
    memory: LSRecMemory | None = None


@dataclass
class LSRecNextItemOutput(ModelOutput):
    r"""
    scores (`[batch, num_items]`): score of every catalog item as the next event after each history.
    gate (`[batch]`): long-term share of the user state that produced them (0 = all short-term).
    """

    scores: torch.Tensor | None = None
    gate: torch.Tensor | None = None


class LSRecItemEmbeddings(nn.Module):
    """Item token = learned id embedding (optional) + projection of the frozen content embedding of its text."""

    def __init__(self, config):
        super().__init__()
        self.special_tokens = nn.Embedding(NUM_SPECIAL_TOKENS, config.hidden_size)
        self.item_ids = nn.Embedding(config.num_items, config.hidden_size) if config.use_item_ids else None
        self.item_id_dropout = config.item_id_dropout
        if config.use_content:
            # Persistent so the content embeddings travel inside model.safetensors with the weights.
            self.register_buffer("content_embeddings", torch.zeros(config.num_items, config.content_dim))
            if config.standardize_content:  # the catalog's statistics, fixed by `set_content_embeddings`
                self.register_buffer("content_mean", torch.zeros(config.content_dim))
                self.register_buffer("content_scale", torch.ones(config.content_dim))
            self.text_proj = nn.Linear(config.content_dim, config.hidden_size)
        else:
            self.text_proj = None
        if config.use_content and config.content_adapter == "mlp":  # beside the projection, which it refines
            self.text_mlp = nn.Sequential(nn.Linear(config.content_dim, config.intermediate_size),
                                          ACT2FN[config.hidden_act], nn.Dropout(config.hidden_dropout_prob),
                                          nn.Linear(config.intermediate_size, config.hidden_size))
        else:
            self.text_mlp = None
        # Side features: one table per feature, row 0 = unknown value, which stays zero (adds nothing).
        self.features = nn.ModuleList(nn.Embedding(len(values) + 1, config.hidden_size, padding_idx=0)
                                      for values in config.feature_vocab.values())
        if config.scenario_feature is not None:
            self.target_scenario = nn.Embedding(len(config.context_vocab[config.scenario_feature]) + 1,
                                                config.hidden_size, padding_idx=0)
        else:
            self.target_scenario = None
        # position 0 = the segment's last event, so the most recent event always has the same embedding
        self.positions = nn.Embedding(config.segment_length, config.hidden_size) if config.absolute_positions else None
        if config.embedding_layer_norm:
            self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.layer_norm = nn.Identity()
        # SASRec scales its tokens so that they outweigh the position embeddings added to them
        self.scale = math.sqrt(config.hidden_size) if config.block_layout == "sasrec" else 1.0
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    @torch.no_grad()
    def set_content_embeddings(self, embeddings):
        """Copy the catalog's content embeddings `[num_items, content_dim]` in (and fix their statistics)."""
        embeddings = torch.as_tensor(embeddings, dtype=self.content_embeddings.dtype)
        self.content_embeddings.copy_(embeddings)
        if hasattr(self, "content_mean"):
            self.content_mean.copy_(embeddings.mean(0))
            std = embeddings.std(0)  # a dimension with no spread (or a one-item catalog) is left unscaled
            self.content_scale.copy_(torch.where(std > 1e-6, 1.0 / std, torch.ones_like(std)))

    def item_representations(self, item_indices=None):
        """Representations of catalog items (all of them, or `item_indices`), shared with the output layer."""
        reps = 0
        if self.item_ids is not None:
            indices = item_indices
            if indices is None:  # through the module, not .weight, so that a LoRA adapter on it applies
                indices = torch.arange(self.item_ids.weight.shape[0], device=self.item_ids.weight.device)
            reps = self.item_ids(indices)
            if self.training and self.item_id_dropout > 0:
                # each occurrence (or catalog row) keeps its id embedding or is its text alone, unscaled:
                # at inference a cold item is exactly that
                keep = torch.rand(reps.shape[:-1], device=reps.device) >= self.item_id_dropout
                reps = reps * keep[..., None].to(reps.dtype)
        if self.text_proj is not None:
            content = self.content_embeddings if item_indices is None else self.content_embeddings[item_indices]
            reps = reps + self.content_tokens(content)
        return reps

    def content_tokens(self, content):
        """The text part of item tokens `[..., hidden]` for content embeddings `[..., content_dim]`."""
        content = self.standardized(content).to(self.text_proj.weight.dtype)
        tokens = self.text_proj(content)
        return tokens if self.text_mlp is None else tokens + self.text_mlp(content)

    def standardized(self, content):
        """Content embeddings as the projection reads them: scaled by the catalog's statistics where configured."""
        if hasattr(self, "content_mean"):
            return (content - self.content_mean.to(content.dtype)) * self.content_scale.to(content.dtype)
        return content

    def forward(self, input_ids, context_ids=None, target_scenario_ids=None):
        """Tokens `[B, T, H]`; `context_ids` `[B, T, F]` (ids of `config.feature_names`, 0 = unknown) and
        `target_scenario_ids` `[B, T]` (the scenario of the event each position predicts) are optional."""
        # Only the items in the batch are represented: the cost does not grow with the catalog.
        is_item = is_item_token(input_ids)[..., None]
        items = self.item_representations(to_indices(input_ids).clamp(min=0))
        special = self.special_tokens(input_ids.clamp(max=NUM_SPECIAL_TOKENS - 1))
        tokens = torch.where(is_item, items, special) * self.scale
        if context_ids is not None:
            for index, table in enumerate(self.features):
                tokens = tokens + table(context_ids[..., index])
        if target_scenario_ids is not None and self.target_scenario is not None:
            tokens = tokens + self.target_scenario(target_scenario_ids)
        if self.positions is not None:
            length = input_ids.shape[1]
            from_end = torch.arange(length - 1, -1, -1, device=input_ids.device).clamp(max=self.positions.num_embeddings - 1)
            tokens = tokens + self.positions(from_end)
        return self.dropout(self.layer_norm(tokens))


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """T5's bucketing: exact buckets for small distances, logarithmic ones up to `max_distance`."""
    buckets = 0
    if bidirectional:
        num_buckets //= 2
        buckets = (relative_position > 0).long() * num_buckets
        relative_position = relative_position.abs()
    else:
        relative_position = -torch.clamp(relative_position, max=0)
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    large = max_exact + (
        torch.log(relative_position.float().clamp(min=1) / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, relative_position, large)


class LSRecRelativePositionBias(nn.Module):
    """A learned per-head bias on (key position - query position), shared by all layers.

    Relative positions are what make the XL memory work: a cached state keeps its meaning whatever
    absolute position the segment that reads it starts at.
    """

    def __init__(self, config):
        super().__init__()
        self.bidirectional = config.objective == "cloze"
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.bias = nn.Embedding(self.num_buckets, config.num_attention_heads)

    def forward(self, query_length, key_length, device):
        # Queries are the last `query_length` of the `key_length` positions [memory ; segment].
        query_positions = torch.arange(key_length - query_length, key_length, device=device)[:, None]
        key_positions = torch.arange(key_length, device=device)[None, :]
        buckets = relative_position_bucket(
            key_positions - query_positions, self.bidirectional, self.num_buckets, self.max_distance
        )
        return self.bias(buckets).permute(2, 0, 1)  # [heads, query, key]


class LSRecAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_probs_dropout_prob

    def forward(self, hidden_states, context, attention_bias):
        """`hidden_states` [B, T, H] attend to `context` [B, M+T, H] = [memory ; segment]."""
        batch, query_length, _ = hidden_states.shape
        key_length = context.shape[1]
        q = self.q_proj(hidden_states).view(batch, query_length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(context).view(batch, key_length, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(context).view(batch, key_length, self.num_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return self.o_proj(out.transpose(1, 2).reshape(batch, query_length, -1))


class LSRecLayer(nn.Module):
    """Transformer layer whose keys and values are [this layer's memory ; the segment] (`config.block_layout`)."""

    def __init__(self, config):
        super().__init__()
        self.sasrec_layout = config.block_layout == "sasrec"
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = LSRecAttention(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, memory_states, attention_bias):
        if self.sasrec_layout:
            query = self.attention_norm(hidden_states)
            context = torch.cat([memory_states, hidden_states], dim=1)
            hidden_states = self.ffn_norm(query + self.dropout(self.attention(query, context, attention_bias)))
            return hidden_states + self.dropout(self.fc_out(self.act(self.fc_in(hidden_states))))
        memory_length = memory_states.shape[1]
        context = self.attention_norm(torch.cat([memory_states, hidden_states], dim=1))
        hidden_states = hidden_states + self.dropout(
            self.attention(context[:, memory_length:], context, attention_bias)
        )
        ffn = self.fc_out(self.act(self.fc_in(self.ffn_norm(hidden_states))))
        return hidden_states + self.dropout(ffn)


class LSRecEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.causal = config.objective == "causal"
        self.relative_bias = LSRecRelativePositionBias(config)
        self.layers = nn.ModuleList([LSRecLayer(config) for _ in range(config.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def attention_bias(self, segment_mask, memory_mask):
        """[B, heads, T, M+T] additive bias: relative positions, padding, causality.

        A query always sees itself, so rows of pure padding stay finite (their outputs are never used).
        """
        query_length, memory_length = segment_mask.shape[1], memory_mask.shape[1]
        key_length = memory_length + query_length
        device = segment_mask.device
        allowed = torch.cat([memory_mask, segment_mask], dim=1)[:, None, :].expand(-1, query_length, -1)
        query_positions = torch.arange(memory_length, key_length, device=device)[:, None]
        key_positions = torch.arange(key_length, device=device)[None, :]
        if self.causal:
            allowed = allowed & (key_positions <= query_positions)
        allowed = allowed | (key_positions == query_positions)
        blocked = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, float("-inf"))
        return self.relative_bias(query_length, key_length, device)[None] + blocked[:, None]

    def forward(self, hidden_states, segment_mask, memory=None):
        """Returns the top-layer states and, per layer, the inputs the layer saw (to extend the memory)."""
        batch, _, width = hidden_states.shape
        if memory is None:
            memory_mask = segment_mask.new_zeros(batch, 0)
            memory_hidden = [hidden_states.new_zeros(batch, 0, width)] * len(self.layers)
        else:
            memory_mask, memory_hidden = memory.mask, memory.hidden
        bias = self.attention_bias(segment_mask, memory_mask)
        layer_inputs = []
        for layer, layer_memory in zip(self.layers, memory_hidden):
            layer_inputs.append(hidden_states)
            hidden_states = layer(hidden_states, layer_memory.to(hidden_states.dtype), bias)
        return self.final_norm(hidden_states), layer_inputs


class LSRecOutputBias(nn.Module):
    """One learned score offset per item (its popularity, roughly).

    A module rather than a bare parameter so that PEFT can train it beside an adapter (`modules_to_save`).
    """

    def __init__(self, num_items):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_items))

    def forward(self, item_indices=None):
        return self.bias if item_indices is None else self.bias[item_indices]


class LSRecPreTrainedModel(LSRecHubMixin, PreTrainedModel):
    config_class = LSRecConfig
    config: LSRecConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LSRecItemEmbeddings) and module.item_ids is not None:
            # Id embeddings start small so that, at first, an item is mostly what its text says.
            init.normal_(module.item_ids.weight, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, LSRecOutputBias):
            init.zeros_(module.bias)


class LSRecModel(LSRecPreTrainedModel):
    """The bare LSRec model: item tokens in, per-position user states (short, long, fused) out."""

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = LSRecItemEmbeddings(config)
        self.encoder = LSRecEncoder(config)
        if config.uses_long_memory:
            self.long_proj = nn.Linear(config.hidden_size, config.hidden_size)
        if config.memory == "long+short":
            self.gate = nn.Linear(2 * config.hidden_size, 1)
        self.post_init()

    def empty_memory(self, batch_size, device=None):
        device = device or self.device
        width = self.config.hidden_size
        return LSRecMemory(
            hidden=tuple(torch.zeros(batch_size, 0, width, device=device) for _ in self.encoder.layers),
            mask=torch.zeros(batch_size, 0, dtype=torch.bool, device=device),
            long_sum=torch.zeros(batch_size, width, device=device),
            long_count=torch.zeros(batch_size, device=device),
        )

    def forward(self, input_ids, attention_mask=None, memory=None, context_ids=None, target_scenario_ids=None,
                **kwargs):
        """One segment `[B, T]` of item tokens, reading and extending the users' `memory` (`None` = no history).

        `context_ids` `[B, T, F]` and `target_scenario_ids` `[B, T]`: see `LSRecItemEmbeddings.forward`.
        """
        segment_mask = input_ids != PAD_TOKEN_ID if attention_mask is None else attention_mask.bool()
        hidden_states = self.embeddings(input_ids, context_ids, target_scenario_ids)
        if not self.config.uses_long_memory:
            top, _ = self.encoder(hidden_states, segment_mask)
            return LSRecModelOutput(last_hidden_state=top, user_state=top, gate=torch.zeros_like(top[..., 0]))

        if memory is None:
            memory = self.empty_memory(input_ids.shape[0], input_ids.device)
        top, layer_inputs = self.encoder(hidden_states, segment_mask, memory)

        # Pooled long-term state: mean of the top-layer states of every event up to each position
        # (causal) or of the whole segment (cloze), continuing the running sum kept in the memory.
        weights = segment_mask.to(top.dtype)[..., None]
        if self.config.objective == "causal":
            segment_sum, segment_count = torch.cumsum(top * weights, 1), torch.cumsum(weights, 1)
        else:
            segment_sum = (top * weights).sum(1, keepdim=True).expand_as(top)
            segment_count = weights.sum(1, keepdim=True).expand_as(weights)
        long_sum = memory.long_sum[:, None].to(top.dtype) + segment_sum
        long_count = memory.long_count[:, None, None].to(top.dtype) + segment_count
        long_state = self.long_proj(long_sum / long_count.clamp(min=1.0))

        if self.config.memory == "long":
            gate = torch.ones_like(top[..., 0])
            user_state = long_state
        else:
            gate = torch.sigmoid(self.gate(torch.cat([top, long_state], dim=-1))).squeeze(-1)
            user_state = (1 - gate[..., None]) * top + gate[..., None] * long_state

        new_memory = self._extend_memory(memory, layer_inputs, segment_mask, top * weights)
        return LSRecModelOutput(
            last_hidden_state=top, user_state=user_state, long_state=long_state, gate=gate, memory=new_memory
        )

    def _extend_memory(self, memory, layer_inputs, segment_mask, masked_top):
        def keep_last(states):  # the XL memory: the last `memory_length` positions of [memory ; segment]
            return states[:, states.shape[1] - min(self.config.memory_length, states.shape[1]) :]

        hidden = tuple(
            keep_last(torch.cat([old.to(new.dtype), new], dim=1)).detach()
            for old, new in zip(memory.hidden, layer_inputs)
        )
        return LSRecMemory(
            hidden=hidden,
            mask=keep_last(torch.cat([memory.mask, segment_mask], dim=1)),
            long_sum=(memory.long_sum + masked_top.sum(1).float()).detach(),
            long_count=(memory.long_count + segment_mask.sum(1).float()).detach(),
        )

    def encode(self, input_ids, attention_mask=None, memory=None, context_ids=None, target_scenario_ids=None,
               skip_empty_chunks=True):
        """A whole history `[B, L]` (left-padded, most recent event last), read chunk by chunk.

        Chunks of `segment_length` are aligned to the end so the last one is the short segment; earlier
        chunks only build the memory, so cost grows linearly with L and memory use stays bounded.
        Returns the output of the last (short) segment, whose `memory` can be extended with new events.
        Leading chunks of pure padding are skipped (`skip_empty_chunks=False` reads them, to the same result up to
        float rounding: a graph without data-dependent branches, for export).
        """
        if attention_mask is None:
            attention_mask = input_ids != PAD_TOKEN_ID
        segment = self.config.segment_length
        side = {"context_ids": context_ids, "target_scenario_ids": target_scenario_ids}
        if not self.config.uses_long_memory:
            return self(input_ids[:, -segment:], attention_mask[:, -segment:],
                        **{k: None if v is None else v[:, -segment:] for k, v in side.items()})
        pad = (-input_ids.shape[1]) % segment
        if pad:
            input_ids = F.pad(input_ids, (pad, 0), value=PAD_TOKEN_ID)
            attention_mask = F.pad(attention_mask, (pad, 0), value=False)
            side = {k: None if v is None else F.pad(v.movedim(1, -1), (pad, 0)).movedim(-1, 1) for k, v in side.items()}
        output = None
        for start in range(0, input_ids.shape[1], segment):
            chunk_mask = attention_mask[:, start : start + segment]
            if skip_empty_chunks and output is None and memory is None and not chunk_mask.any():
                continue  # leading chunks of pure padding carry nothing
            output = self(input_ids[:, start : start + segment], chunk_mask, memory,
                          **{k: None if v is None else v[:, start : start + segment] for k, v in side.items()})
            memory = output.memory
        return output


class LSRecForSequentialRecommendation(LSRecPreTrainedModel):
    """LSRec with its recommendation head: user states scored against every item representation + a bias."""

    def __init__(self, config):
        super().__init__(config)
        self.model = LSRecModel(config)
        self.output_bias = LSRecOutputBias(config.num_items)
        # Proposal distribution of the sampled softmax (uniform until `set_item_frequencies`).
        self.register_buffer("sampling_probs", torch.full((config.num_items,), 1.0 / max(config.num_items, 1)),
                             persistent=False)
        self.post_init()

    @classmethod
    def from_catalog(cls, catalog, content_embeddings=None, **config_kwargs):
        """A new, untrained model for `catalog`: the config sized to it (`num_items`, `content_dim`, `use_content`),
        the content embeddings `[len(catalog), dim]` of its item texts copied in (`None`: an id-only model), the
        catalog attached. `config_kwargs` are any other `LSRecConfig` arguments."""
        use_content = content_embeddings is not None
        if use_content and tuple(content_embeddings.shape[:1]) != (len(catalog),):
            raise ValueError(f"from_catalog: {content_embeddings.shape[0]} content embeddings for a catalog of "
                             f"{len(catalog)} items")
        config = LSRecConfig(num_items=len(catalog), content_dim=content_embeddings.shape[1] if use_content else 0,
                             use_content=use_content, **config_kwargs)
        model = cls(config)
        if use_content:
            model.model.embeddings.set_content_embeddings(content_embeddings)
        model.catalog = catalog
        return model

    @torch.no_grad()
    def extend_catalog(self, catalog, content_embeddings=None, new_item_init="text", ridge=0.1):
        """Grow the model to `catalog` (this model's catalog followed by new items), like `resize_token_embeddings`.

        `content_embeddings` `[num_new, content_dim]` are required when the model reads item text. A new item's
        id embedding and output bias start as what its text predicts (`new_item_init="text"`, the default for a
        model that reads text): a ridge regression from the (standardized) text embeddings of the items already
        in the catalog to their id embeddings and biases, with penalty `ridge` x the number of those items, as
        content-to-collaborative mappings do for cold items (van den Oord et al., 2013). A trained id embedding
        partly cancels what its item's text wrongly suggests; a new item with a zero id lacks that correction, and
        on Amazon Toys such items filled 97 % of the top 10. `new_item_init="zero"` starts the id embedding at
        zero and the bias at the mean bias (what a model trained with `item_id_dropout` saw for a dropped id);
        it is what an id-only model always does. Returns the number of items added.
        """
        if new_item_init not in ("text", "zero"):
            raise ValueError(f"extend_catalog: new_item_init must be 'text' or 'zero', got {new_item_init!r}")
        if not ridge > 0:
            raise ValueError(f"extend_catalog: ridge must be > 0, got {ridge}")
        old, new = self.config.num_items, len(catalog)
        if self.catalog is None or catalog.item_ids[:old] != self.catalog.item_ids:
            raise ValueError("extend_catalog: the new catalog must start with this model's catalog, in order "
                             "(use `model.catalog.extended_with(other)`)")
        added = new - old
        if added == 0:
            return 0
        embeddings = self.model.embeddings
        if embeddings.item_ids is not None:
            grown = nn.Embedding(new, self.config.hidden_size).to(embeddings.item_ids.weight)
            grown.weight.zero_()
            grown.weight[:old] = embeddings.item_ids.weight
            embeddings.item_ids = grown
        if embeddings.text_proj is not None:
            if content_embeddings is None or tuple(content_embeddings.shape) != (added, self.config.content_dim):
                raise ValueError(f"extend_catalog: content_embeddings of shape ({added}, {self.config.content_dim}) "
                                 f"are needed for the {added} new items")
            embeddings.content_embeddings = torch.cat(
                [embeddings.content_embeddings, content_embeddings.to(embeddings.content_embeddings)])
        bias = self.output_bias.bias.data
        self.output_bias.bias = nn.Parameter(torch.cat([bias, bias.mean().expand(added)]))
        if new_item_init == "text" and embeddings.text_proj is not None:
            self._predict_new_items_from_text(old, ridge)
        self.sampling_probs = torch.full((new,), 1.0 / new, device=bias.device)
        self.config.num_items = new
        self.catalog = catalog
        if self.trend_prior is not None:  # the known items keep their indices; the new ones have no events yet
            self.trend_prior.num_items = new
        if self.cooccurrence_prior is not None:
            self.cooccurrence_prior.extend(new)
        return added

    @torch.no_grad()
    def _predict_new_items_from_text(self, num_known, ridge):
        """Set the id embeddings and biases of items `num_known:` to a ridge regression's prediction from their text,
        fitted on items `:num_known` (centred, so that an item of average text gets the average id and bias)."""
        embeddings = self.model.embeddings
        text = embeddings.standardized(embeddings.content_embeddings.double())
        targets = [self.output_bias.bias.data[:, None]]
        if embeddings.item_ids is not None:
            targets.insert(0, embeddings.item_ids.weight.data)
        targets = torch.cat(targets, dim=1).double()
        known_text, known = text[:num_known], targets[:num_known]
        text_mean, target_mean = known_text.mean(0), known.mean(0)
        centred = known_text - text_mean
        penalty = ridge * num_known * torch.eye(text.shape[1], dtype=text.dtype, device=text.device)
        weights = torch.linalg.solve(centred.T @ centred + penalty, centred.T @ (known - target_mean))
        predicted = ((text[num_known:] - text_mean) @ weights + target_mean).to(self.output_bias.bias.dtype)
        if embeddings.item_ids is not None:
            embeddings.item_ids.weight[num_known:] = predicted[:, :-1]
        self.output_bias.bias[num_known:] = predicted[:, -1]

    @torch.no_grad()
    def replace_catalog(self, catalog, content_embeddings=None, new_item_ids=False):
        """Make the model recommend in `catalog`, a catalog it was never trained on (a new domain), in place.

        Every item is then what its text says: `content_embeddings` `[len(catalog), content_dim]` of the new items'
        texts (encoded with `config.text_encoder`) through the trained projection, id embeddings zero, one shared
        output bias. The layers, the projection and the text statistics of `standardize_content` are kept: they are
        what transfers. An id-only model has nothing to tell new items apart by, so it is refused.

        `new_item_ids=True` gives a text-only model (a multi-domain checkpoint) an id embedding and an output bias
        per new item, both zero: scores are unchanged until fine-tuning learns what the text does not say.
        """
        embeddings = self.model.embeddings
        if embeddings.text_proj is None:
            raise ValueError("replace_catalog: an id-only model cannot recommend in a new catalog (its items are only "
                             "their ids); train with a text encoder")
        new = len(catalog)
        if content_embeddings is None or tuple(content_embeddings.shape) != (new, self.config.content_dim):
            shape = None if content_embeddings is None else tuple(content_embeddings.shape)
            raise ValueError(f"replace_catalog: content_embeddings of shape ({new}, {self.config.content_dim}) are "
                             f"needed for the {new} items of the new catalog, got {shape}")
        if embeddings.item_ids is not None or new_item_ids:
            embeddings.item_ids = nn.Embedding(new, self.config.hidden_size).to(embeddings.text_proj.weight)
            embeddings.item_ids.weight.zero_()
            self.config.use_item_ids = True
        embeddings.content_embeddings = torch.as_tensor(content_embeddings).to(embeddings.content_embeddings)
        bias = self.output_bias.bias.data
        # one shared offset for every item (it changes no ranking); zero where new ids turn the bias on
        self.output_bias.bias = nn.Parameter((bias.new_zeros(()) if new_item_ids else bias.mean()).expand(new).clone())
        self.config.use_output_bias = self.config.use_output_bias or new_item_ids
        self.sampling_probs = torch.full((new,), 1.0 / max(new, 1), device=bias.device)
        self.config.num_items = new
        self.catalog = catalog
        # the old catalog's events say nothing of what trends, or goes together, in the new one
        self.trend_prior = self.cooccurrence_prior = None
        return self

    def set_item_frequencies(self, counts):
        """Use item popularity (smoothed) as the sampled-softmax proposal; log-Q corrects for it."""
        probs = torch.as_tensor(counts, dtype=torch.float).clamp(min=0) + 1.0
        self.sampling_probs.copy_(probs / probs.sum())

    def item_scores(self, user_state, item_indices=None):
        """Scores `[..., num_items]` (or `[..., len(item_indices)]`) of items for user states `[..., hidden]`."""
        reps = self.model.embeddings.item_representations(item_indices)
        scores = user_state @ reps.T
        return scores + self.output_bias(item_indices) if self.config.use_output_bias else scores

    def forward(self, input_ids, attention_mask=None, labels=None, memory=None, context_ids=None,
                target_scenario_ids=None, earlier_ids=None, **kwargs):
        r"""
        input_ids (`[batch, seq]`): item tokens (`ItemCatalog.encode`, `lsrec_hf.processing.tokens`; 0 = padding, 1 = mask) of one segment.
        labels (`[batch, seq]`, *optional*): catalog index of the item to predict at each position, -100 where none.
        memory (`LSRecMemory`, *optional*): returned by the previous segment of the same users.
        context_ids (`[batch, seq, features]`, *optional*): ids of `config.feature_names` per event (0 = unknown).
        target_scenario_ids (`[batch, seq]`, *optional*): the scenario of the event each position predicts.
        earlier_ids (`[batch, earlier]`, *optional*): the item tokens of the users' earlier segments; with
            `config.loss_excludes_history` their items are left out of the softmax too.
        """
        outputs = self.model(input_ids, attention_mask=attention_mask, memory=memory, context_ids=context_ids,
                             target_scenario_ids=target_scenario_ids)
        loss = logits = None
        if labels is None:
            logits = self.item_scores(outputs.user_state)
        else:
            selected = labels != -100
            states, targets = outputs.user_state[selected], labels[selected]
            if self.config.loss == "full":
                scores = self.item_scores(states).float()
                if self.config.loss_excludes_history:
                    seen = self._seen_before(input_ids, earlier_ids, selected)
                    seen[torch.arange(len(targets), device=seen.device), targets] = False  # a repeat stays a target
                    scores = scores.masked_fill(seen, float("-inf"))
                loss = F.cross_entropy(scores, targets, reduction="sum")
            else:
                history = (input_ids, earlier_ids, selected) if self.config.loss_excludes_history else None
                loss = self._sampled_softmax_loss(states, targets, history)
            # Sum / count keeps an empty segment (all padding) at zero loss instead of NaN.
            loss = loss / selected.sum().clamp(min=1)
        return LSRecRecommendationOutput(loss=loss, logits=logits, gate=outputs.gate, memory=outputs.memory)

    def _seen_before(self, input_ids, earlier_ids, selected):
        """`[selected positions, num_items]` bool: whether each item is in the history up to each selected position
        (its own event included: the causal input at position t is the event before the one it predicts).

        An item is seen at position t when its first occurrence in the row is at or before t (earlier segments
        count as position -1): one `[batch, items]` index instead of a `[batch, length, items]` running count.
        """
        num_items = self.config.num_items
        batch, length = input_ids.shape
        columns = item_indices_or(input_ids, num_items)  # special tokens fall into an extra column, dropped below
        first = torch.full((batch, num_items + 1), length, dtype=torch.long, device=input_ids.device)
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        first.scatter_reduce_(1, columns, positions, reduce="amin")
        if earlier_ids is not None and earlier_ids.shape[1]:
            first.scatter_(1, item_indices_or(earlier_ids, num_items), -1)
        rows, steps = selected.nonzero(as_tuple=True)  # row-major, the order of `tensor[selected]`
        return first[rows, :num_items] <= steps[:, None]

    def _seen_among(self, input_ids, earlier_ids, selected, negatives):
        """`[selected positions, len(negatives)]` bool: whether each negative is in the history up to each selected
        position, as `_seen_before` says for every item, without a `[batch, num_items]` index: the segment is
        compared with the negatives (`[batch, length, negatives]`), earlier segments are looked up in their sorted
        (row, item) codes. Its cost follows the negatives, not the catalog."""
        num_items = self.config.num_items
        batch, length = input_ids.shape
        columns = item_indices_or(input_ids, num_items)
        positions = torch.arange(length, device=input_ids.device).view(1, length, 1)
        first = torch.where(columns[:, :, None] == negatives[None, None, :], positions, length).amin(1)  # [B, K]
        if earlier_ids is not None and earlier_ids.shape[1]:
            rows = torch.arange(batch, device=input_ids.device)[:, None] * (num_items + 1)
            codes = (rows + item_indices_or(earlier_ids, num_items)).flatten().sort().values
            queries = rows + negatives[None, :]
            found = codes[torch.searchsorted(codes, queries).clamp(max=len(codes) - 1)] == queries
            first = first.masked_fill(found, -1)
        rows, steps = selected.nonzero(as_tuple=True)  # row-major, the order of `tensor[selected]`
        return first[rows] <= steps[:, None]

    def _sampled_softmax_loss(self, states, targets, history=None):
        logits = self._sampled_logits(states, targets, history)
        return F.cross_entropy(logits, torch.zeros_like(targets), reduction="sum")

    def _sampled_logits(self, states, targets, history=None):
        """`[positions, 1 + negatives]` logits: the target's, then the shared negatives', each corrected by -log of
        the negative's expected count in the pool.

        `negative_sampling="frequency"`: K negatives drawn from q (the items' training frequencies,
        `set_item_frequencies`), expected count K q. `"mixed"` (mixed negative sampling, as eSASRec and gSASRec
        train): the other positions' targets (in-batch negatives, drawn from the data, i.e. from q) and K uniform
        draws, expected count (P - 1) q + K / N. Either way exp(target) + sum of exp(score) / count is an unbiased
        estimate of the full softmax's normaliser (accidental hits of the target are dropped: the target is counted
        once, exactly), so the loss tends to full cross-entropy as K grows. With `history` (`input_ids`,
        `earlier_ids`, `selected`: `config.loss_excludes_history`), negatives already in the user's history at a
        position are dropped too, so it tends to the full softmax without the history items.
        """
        num_negatives, num_items = self.config.num_negatives, self.config.num_items
        if self.config.negative_sampling == "mixed":
            uniform = torch.randint(num_items, (num_negatives,), device=targets.device)
            negatives = torch.cat([targets, uniform])
            log_count = torch.log((len(targets) - 1) * self.sampling_probs + num_negatives / num_items)
        else:
            negatives = torch.multinomial(self.sampling_probs, num_negatives, replacement=True)
            log_count = torch.log(self.sampling_probs * num_negatives)
        positive = (states * self.model.embeddings.item_representations(targets)).sum(-1)
        if self.config.use_output_bias:
            positive = positive + self.output_bias(targets)
        negative = self.item_scores(states, negatives) - log_count[negatives]
        dropped = negatives[None, :] == targets[:, None]  # accidental hits
        if history is not None:
            dropped = dropped | self._seen_among(*history, negatives)
        negative = negative.masked_fill(dropped, float("-inf"))
        return torch.cat([positive[:, None], negative], dim=1).float()

    @torch.no_grad()
    def score_next(self, input_ids, attention_mask=None, memory=None, context_ids=None, target_context_ids=None):
        """`LSRecNextItemOutput`: scores `[B, num_items]` of the next item after each (left-padded) history of item
        tokens (`ItemCatalog.encode`), and the gate `[B]`.

        `context_ids` `[B, L, F]`: the side features of the history's events; `target_context_ids` `[B, F]`: those
        of the event to recommend (where and when it will be shown; its scenario is the target scenario).
        """
        user_state, gate = self.next_user_state(input_ids, attention_mask, memory, context_ids, target_context_ids)
        return LSRecNextItemOutput(scores=self.item_scores(user_state), gate=gate)

    @torch.no_grad()
    def recommend(self, history, top_k=10, exclude_history=True, now=None):
        """The `top_k` next items for one user's `history` (external item ids, oldest first), best first, as
        `[{"item_id", "title", "score"}]`. The history's own items are left out unless `exclude_history=False`.
        A model with a `trend_prior` adds what is trending at `now` (unix seconds or a datetime; default: just
        after the last event the prior knows); one with a `cooccurrence_prior` adds what other users took beside
        the history's latest items.

        One call for scripts and notebooks; the `"recommendation"` pipeline adds titles as input, candidates,
        context, explanations and user states.
        """
        if self.catalog is None:
            raise ValueError("recommend: this model has no catalog (load it with from_pretrained, or set model.catalog)")
        history = list(history)
        if not history:
            raise ValueError("recommend: history is empty; give at least one item id")
        tokens = torch.tensor([self.catalog.encode(history)], device=self.device)
        scores = self.score_next(tokens).scores[0].float()
        if self.trend_prior is not None:
            scores += self.trend_prior.bias([self.trend_prior.moment(now)])[0].to(scores.device)
        if self.cooccurrence_prior is not None:
            scores += self.cooccurrence_prior.bias([self.catalog.indices(history)])[0].to(scores.device)
        if exclude_history:
            scores[self.catalog.indices(history)] = float("-inf")
        top = scores.topk(min(top_k, int(torch.isfinite(scores).sum())))
        return [{"item_id": self.catalog.item_ids[i], "title": self.catalog.titles[i], "score": s}
                for s, i in zip(top.values.tolist(), top.indices.tolist())]

    @torch.no_grad()
    def next_user_state(self, input_ids, attention_mask=None, memory=None, context_ids=None, target_context_ids=None,
                        skip_empty_chunks=True):
        """The user state `[B, hidden]` that `score_next` scores against every item, and the gate `[B]`
        (an approximate top-k searches an index with it instead of scoring the catalog)."""
        if attention_mask is None:
            attention_mask = input_ids != PAD_TOKEN_ID
        num_features = len(self.config.feature_names)
        if num_features and (context_ids is not None or target_context_ids is not None):
            if context_ids is None:
                context_ids = input_ids.new_zeros(*input_ids.shape, num_features)
            if target_context_ids is None:
                target_context_ids = input_ids.new_zeros(input_ids.shape[0], num_features)
        else:
            context_ids = target_context_ids = None
        target_scenario_ids = None
        if self.config.scenario_feature is not None and context_ids is not None:
            scenario = self.config.scenario_index
            next_scenario = target_context_ids[:, None, scenario]
            target_scenario_ids = target_scenarios(context_ids, target_context_ids, scenario,
                                                   self.config.objective == "causal")
        if self.config.objective == "cloze":  # the slot to predict is a [MASK] after the last event
            slot = torch.full_like(input_ids[:, :1], MASK_TOKEN_ID)
            input_ids = torch.cat([input_ids, slot], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(slot, dtype=torch.bool)], dim=1)
            if context_ids is not None:
                context_ids = torch.cat([context_ids, target_context_ids[:, None]], dim=1)
            if target_scenario_ids is not None:
                target_scenario_ids = torch.cat([target_scenario_ids, next_scenario], dim=1)
        outputs = self.model.encode(input_ids, attention_mask, memory, context_ids, target_scenario_ids,
                                    skip_empty_chunks)
        return outputs.user_state[:, -1], outputs.gate[:, -1]


__all__ = ["LSRecModel", "LSRecForSequentialRecommendation", "LSRecPreTrainedModel", "LSRecMemory",
           "LSRecNextItemOutput"]
