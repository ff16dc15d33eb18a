"""A user's state: what the model keeps of a history, so new events are folded in without reading it again.

The state is the Transformer-XL memory of the older events plus the tokens of the latest ones. `encode_user` splits a
history where `encode` puts its chunk boundaries (aligned to the end, the last chunk being the short segment), so a
fresh state scores exactly like `score_next` on the whole history.

`fold_in` moves events into the memory only by whole chunks of `segment_length`; the events past the last whole
chunk stay as tokens and are read as one partial chunk when the state is scored. Chunks are aligned to the end of a
history, so their boundaries move with its length: whenever the history has grown by a multiple of `segment_length`
since the memory was first written (in one call or one event at a time), the chunks are where a fresh `encode` of
the whole history puts them and the scores are the same. In between, the memory is chunked differently from a fresh
read: still a valid Transformer-XL reading of the history, but each event sees a slightly different window of the
past, so the scores differ a little from those of a fresh `encode`.

States are saved with safetensors, never pickle.
"""

from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..model.modeling_lsrec import LSRecMemory


def short_segment_length(config):
    """History events read by the last (short) segment; a cloze model's [MASK] slot takes one of its places."""
    return config.segment_length - (config.objective == "cloze")


@dataclass
class UserState:
    """One user's state.

    tokens: `[n]` item tokens (`ItemCatalog.encode`) of the events not in the memory, most recent last: the short
        segment, and before it fewer than `segment_length` events waiting to make a whole chunk.
    memory: what the events before `tokens` left behind (`LSRecMemory` of batch 1), or `None` when nothing did
        (a history within the short segment, or a model without long memory).
    num_items: the catalog size of the model that encoded it (`None` for a state saved before it was recorded), so
        that a model with a smaller catalog refuses it by name rather than failing on an item index.
    """

    tokens: torch.Tensor
    memory: LSRecMemory | None = None
    num_items: int | None = None

    @property
    def empty(self):
        return len(self.tokens) == 0 and self.memory is None

    def to(self, device):
        memory = self.memory
        if memory is not None:
            memory = LSRecMemory(tuple(h.to(device) for h in memory.hidden), memory.mask.to(device),
                                 memory.long_sum.to(device), memory.long_count.to(device))
        return UserState(self.tokens.to(device), memory, self.num_items)

    def save(self, path):
        tensors = {"tokens": self.tokens}
        if self.memory is not None:
            tensors.update({f"memory.hidden.{i}": h for i, h in enumerate(self.memory.hidden)})
            tensors.update({"memory.mask": self.memory.mask, "memory.long_sum": self.memory.long_sum,
                            "memory.long_count": self.memory.long_count})
        metadata = {"format": "lsrec_user_state"}
        if self.num_items is not None:
            metadata["num_items"] = str(self.num_items)
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, path, metadata=metadata)

    @classmethod
    def load(cls, path, device="cpu"):
        tensors = load_file(path, device=str(device))
        with safe_open(path, framework="pt") as f:
            num_items = (f.metadata() or {}).get("num_items")
        memory = None
        if "memory.mask" in tensors:
            num_layers = sum(name.startswith("memory.hidden.") for name in tensors)
            hidden = tuple(tensors[f"memory.hidden.{i}"] for i in range(num_layers))
            memory = LSRecMemory(hidden, tensors["memory.mask"], tensors["memory.long_sum"],
                                 tensors["memory.long_count"])
        return cls(tensors["tokens"], memory, int(num_items) if num_items is not None else None)


@torch.no_grad()
def _read_into_memory(model, tokens, memory):
    """Extend `memory` with `tokens` `[n]`, chunked like `encode` (aligned to the end, the partial chunk first).

    Unlike `encode`, the partial chunk is not padded: padding between the memory and the events would sit among
    them as positions. At the start of a history the two are the same (leading padding is never attended to).
    """
    segment = model.config.segment_length
    first = len(tokens) % segment
    bounds = ([0] if first else []) + list(range(first, len(tokens) + 1, segment))
    for start, end in zip(bounds, bounds[1:]):
        memory = model.model(tokens[None, start:end], memory=memory).memory
    return memory


def encode_user(model, history_tokens):
    """The state of a user after `history_tokens` (item tokens, oldest first)."""
    return fold_in(model, UserState(torch.zeros(0, dtype=torch.long)), history_tokens)


def fold_in(model, state, new_tokens):
    """The state after the user's `new_tokens` (item tokens, oldest first); `state` is left as it was."""
    state = state.to(model.device)
    tokens = torch.cat([state.tokens, torch.as_tensor(new_tokens, dtype=torch.long, device=model.device).flatten()])
    memory, split = state.memory, max(len(tokens) - short_segment_length(model.config), 0)
    num_items = model.config.num_items
    if not model.config.uses_long_memory:  # a short-memory model forgets what leaves the segment
        return UserState(tokens[split:], num_items=num_items)
    if memory is not None:  # whole chunks only, so the boundaries stay those of the first read (chunked as fresh)
        split -= split % model.config.segment_length
    if split:
        memory = _read_into_memory(model, tokens[:split], memory)
    return UserState(tokens[split:], memory, num_items)


def segment_and_memory(model, state):
    """What `score_next` reads for this state: the short segment's tokens `[n]` and the memory of all before it."""
    state = state.to(model.device)
    split = max(len(state.tokens) - short_segment_length(model.config), 0)
    memory = state.memory
    if split:  # events past the last whole chunk: one partial chunk
        memory = _read_into_memory(model, state.tokens[:split], memory)
    return state.tokens[split:], memory


def score_state(model, state):
    """`LSRecNextItemOutput` of a user's state: scores `[1, num_items]` of the next item and the long-term gate `[1]`."""
    if state.empty:
        raise ValueError("this user state holds no events yet: fold some in first")
    tokens, memory = segment_and_memory(model, state)
    return model.score_next(tokens[None], memory=memory)


__all__ = ["UserState", "encode_user", "fold_in", "score_state", "segment_and_memory", "short_segment_length"]
