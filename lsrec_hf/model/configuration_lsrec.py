"""LSRec model configuration."""

from transformers import PreTrainedConfig

from ..processing.tokens import MASK_TOKEN_ID, NUM_SPECIAL_TOKENS, PAD_TOKEN_ID  # noqa: F401  (re-exported)

MEMORY_MODES = ("long+short", "short", "long")
OBJECTIVES = ("causal", "cloze")
LOSSES = ("full", "sampled")
NEGATIVE_SAMPLING = ("frequency", "mixed")
BLOCK_LAYOUTS = ("pre-norm", "sasrec")
CONTENT_ADAPTERS = ("linear", "mlp")


class LSRecConfig(PreTrainedConfig):
    r"""
    Configuration of an LSRec model: a sequential recommender whose item tokens come from item ids and/or
    item text, with a bidirectional or causal short segment, a Transformer-XL long memory and a gated fusion.

    Args:
        num_items (`int`): size of the item catalog (the output layer scores every item).
        content_dim (`int`, defaults to 384): dimension of the frozen content (text) embeddings; 0 for none.
        use_item_ids (`bool`, defaults to `True`): learn an id embedding per item (warm items).
        use_content (`bool`, defaults to `True`): add a projection of the item's content embedding to its
            token. An item never seen in training is still represented through its text.
        item_id_dropout (`float`, defaults to 0.0): in training, the probability that an item's id embedding is
            left out (its token and its output representation are then its text alone), as in DropoutNet
            (Volkovs et al., 2017). It teaches the model to rank items by their text, which is all a cold item has.
        standardize_content (`bool`, defaults to `True`): centre each dimension of the content embeddings on the
            catalog's mean and scale it to unit variance before the projection (statistics fixed when the
            embeddings are set, kept with the weights and applied unchanged to items added later). Sentence
            embeddings share a large common direction (mean cosine 0.2-0.3 between unrelated Amazon titles) and
            vary little per dimension; standardized, the text part of an item token starts as large as its
            differences from other items.
        content_adapter (`str`, defaults to `"linear"`): how the (frozen) content embedding becomes part of an item
            token: one linear projection (`"linear"`), or that projection plus a two-layer feed-forward block of
            width `intermediate_size` beside it (`"mlp"`), which can read combinations of text dimensions.
        use_output_bias (`bool`, defaults to `True`): add a learned score offset per item (its popularity, roughly)
            to every user's scores.
        absolute_positions (`bool`, defaults to `False`): add a learned embedding of each event's position in its
            segment, counted from the segment's end (SASRec's positions), to the relative position bias.
        embedding_layer_norm (`bool`, defaults to `True`): layer-normalise the item tokens before the first layer;
            without it they enter the layers as they are (their norm then carries information, as in SASRec).
        block_layout (`str`, defaults to `"pre-norm"`): `"pre-norm"` layers (GPT-2's: each branch reads a normalised
            copy of the residual stream, which is never normalised itself) or `"sasrec"` layers (SASRec's: the query
            is normalised and becomes the residual stream, keys and values are the un-normalised inputs, the
            feed-forward block reads and adds to a normalised stream; item tokens scaled by sqrt(hidden_size)).
        text_encoder (`str`): the sentence-transformers model that produced the content embeddings.
        hidden_size (`int`, defaults to 64): width of the item tokens and of every layer.
        num_hidden_layers (`int`, defaults to 2): transformer layers.
        num_attention_heads (`int`, defaults to 2): attention heads per layer.
        intermediate_size (`int`, defaults to 256): width of the feed-forward block.
        hidden_act (`str`, defaults to `"gelu"`): activation of the feed-forward block.
        hidden_dropout_prob (`float`, defaults to 0.3): dropout on embeddings and residual branches.
        attention_probs_dropout_prob (`float`, defaults to 0.3): dropout on attention weights.
        segment_length (`int`, defaults to 50): events in the short segment; the long history is processed in
            chunks of this length.
        memory_length (`int`, defaults to 50): hidden states kept per layer from earlier chunks (the XL memory).
        memory (`str`, defaults to `"long+short"`): `"short"` uses only the last `segment_length` events;
            `"long"` reads the whole history through the memory and predicts from the pooled long-term state;
            `"long+short"` gates the short-term state with the pooled long-term state.
        objective (`str`, defaults to `"causal"`): `"causal"` next-item prediction (SASRec) or `"cloze"`
            masked-item prediction (BERT4Rec).
        mask_prob (`float`, defaults to 0.2): fraction of events masked by the cloze objective.
        loss (`str`, defaults to `"full"`): `"full"` softmax over the catalog or `"sampled"` softmax with
            log-Q correction for catalogs too large to score at every step.
        loss_excludes_history (`bool`, *optional*): leave the items already in the user's history out of
            the training softmax at each position (causal objective; with the sampled softmax, the negatives in
            the history are dropped), as the evaluation leaves them out of the ranking. Unset, it is on for
            `objective="causal"` (with either loss). Otherwise every history item is a negative of every later position: the user state
            is pushed away from the items just consumed, and from the items whose text is like theirs.
        num_negatives (`int`, defaults to 1024): negatives per batch for the sampled softmax.
        negative_sampling (`str`, defaults to `"frequency"`): the sampled softmax's negatives: `"frequency"` draws
            `num_negatives` from the items' training frequencies; `"mixed"` takes the batch's other targets plus
            `num_negatives` uniform draws (mixed negative sampling). Both are log-Q corrected.
        relative_attention_num_buckets (`int`, defaults to 32): buckets of the relative position bias.
        relative_attention_max_distance (`int`, defaults to 256): distance beyond which buckets are shared.
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of the layer norms.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        context_vocab (`dict[str, list[str]]`, *optional*): per-event context features (scenario, hour, device,
            ...) and their known values; value `i` of a feature has id `i + 1`, id 0 is "unknown" and adds nothing.
            Each feature has an embedding added to the item token of its event.
        scenario_feature (`str`, *optional*): the context feature naming where an event happened (one of
            `context_vocab`). Each position then also gets a target-scenario embedding: the scenario of the event
            it predicts, so one model recommends for every scenario and the caller says which one.
        user_vocab (`dict[str, list[str]]`, *optional*): user-level features (age, gender, ...) and their values,
            embedded like context but constant over a user's events (a user token). Off by default.
    """

    model_type = "lsrec"

    num_items: int = 0
    content_dim: int = 384
    use_item_ids: bool = True
    use_content: bool = True
    item_id_dropout: float = 0.0
    standardize_content: bool = True
    content_adapter: str = "linear"
    use_output_bias: bool = True
    absolute_positions: bool = False
    embedding_layer_norm: bool = True
    block_layout: str = "pre-norm"
    text_encoder: str | None = "sentence-transformers/all-MiniLM-L6-v2"
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.3
    attention_probs_dropout_prob: float = 0.3
    segment_length: int = 50
    memory_length: int = 50
    memory: str = "long+short"
    objective: str = "causal"
    mask_prob: float = 0.2
    loss: str = "full"
    loss_excludes_history: bool | None = None
    num_negatives: int = 1024
    negative_sampling: str = "frequency"
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 256
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    context_vocab: dict | None = None
    scenario_feature: str | None = None
    user_vocab: dict | None = None
    pad_token_id: int | None = PAD_TOKEN_ID
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.loss_excludes_history is None:
            self.loss_excludes_history = self.objective == "causal"
        for name, kind in type(self).__annotations__.items():  # a value of the wrong type breaks far from here
            value = getattr(self, name)
            expected = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}.get(kind)
            if expected and (not isinstance(value, expected) or (kind is not bool and isinstance(value, bool))):
                raise ValueError(f"LSRecConfig: {name} must be {kind.__name__}, got {type(value).__name__} {value!r}")
        checks = [
            (self.memory in MEMORY_MODES, f"memory must be one of {MEMORY_MODES}, got {self.memory!r}"),
            (self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}"),
            (self.block_layout in BLOCK_LAYOUTS, f"block_layout must be one of {BLOCK_LAYOUTS}, got {self.block_layout!r}"),
            (self.content_adapter in CONTENT_ADAPTERS,
             f"content_adapter must be one of {CONTENT_ADAPTERS}, got {self.content_adapter!r}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.negative_sampling in NEGATIVE_SAMPLING,
             f"negative_sampling must be one of {NEGATIVE_SAMPLING}, got {self.negative_sampling!r}"),
            (self.use_item_ids or (self.use_content and self.content_dim > 0),
             "an item token needs item ids or content embeddings: set use_item_ids=True or use_content=True"),
            (self.hidden_size % self.num_attention_heads == 0,
             f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"),
            (self.segment_length >= 1, f"segment_length must be >= 1, got {self.segment_length}"),
            (self.memory_length >= 0, f"memory_length must be >= 0, got {self.memory_length}"),
            (0.0 <= self.mask_prob < 1.0, f"mask_prob must be in [0, 1), got {self.mask_prob}"),
            (0.0 <= self.item_id_dropout <= 1.0, f"item_id_dropout must be in [0, 1], got {self.item_id_dropout}"),
            (self.item_id_dropout == 0.0 or (self.use_item_ids and self.use_content),
             "item_id_dropout needs both item ids and content embeddings (use_item_ids=True, use_content=True)"),
            (isinstance(self.loss_excludes_history, bool),
             f"loss_excludes_history must be bool, got {self.loss_excludes_history!r}"),
            (not self.loss_excludes_history or self.objective == "causal",
             "loss_excludes_history needs objective='causal'"),
            (self.num_items >= 0, f"num_items must be >= 0, got {self.num_items}"),
            (self.scenario_feature is None or self.scenario_feature in (self.context_vocab or {}),
             f"scenario_feature {self.scenario_feature!r} must be one of context_vocab's features "
             f"{sorted(self.context_vocab or {})}"),
            (not set(self.context_vocab or {}) & set(self.user_vocab or {}),
             f"context_vocab and user_vocab share feature names: {sorted(set(self.context_vocab or {}) & set(self.user_vocab or {}))}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"LSRecConfig: {message}")
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """As transformers' `from_dict` (how a saved config.json is read), with its file named in a bad value's error.

        A config.json written before `standardize_content` existed was trained without it (and its weights have no
        statistics to load), whatever today's default says."""
        if "standardize_content" not in config_dict and config_dict.get("use_content"):
            config_dict = {**config_dict, "standardize_content": False}
        try:
            return super().from_dict(config_dict, **kwargs)
        except (ValueError, TypeError) as error:
            raise ValueError(f"config.json does not describe a valid LSRec model: {error}") from None

    @property
    def uses_long_memory(self):
        return self.memory in ("long", "long+short")

    @property
    def feature_names(self):
        """Every embedded side feature, in the order of the last axis of `context_ids`: events', then users',
        each sorted by name (config.json stores dictionaries with sorted keys)."""
        return [*sorted(self.context_vocab or {}), *sorted(self.user_vocab or {})]

    @property
    def scenario_index(self):
        """The column of `scenario_feature` in `context_ids` (`None` without one)."""
        return None if self.scenario_feature is None else self.feature_names.index(self.scenario_feature)

    @property
    def feature_vocab(self):
        vocab = {**(self.context_vocab or {}), **(self.user_vocab or {})}
        return {name: vocab[name] for name in self.feature_names}


__all__ = ["LSRecConfig"]
