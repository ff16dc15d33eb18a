"""Item text -> content embeddings."""

from .embeddings import DEFAULT_TEXT_ENCODER, embedding_cache_key, encode_texts, resolve_text_encoder

__all__ = ["DEFAULT_TEXT_ENCODER", "embedding_cache_key", "encode_texts", "resolve_text_encoder"]
