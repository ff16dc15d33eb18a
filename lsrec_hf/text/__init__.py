"""Data (text): item text -> content embeddings, cached on disk; imports no other stage."""

from .embeddings import DEFAULT_TEXT_ENCODER, embedding_cache_key, encode_texts, resolve_text_encoder

__all__ = ["DEFAULT_TEXT_ENCODER", "embedding_cache_key", "encode_texts", "resolve_text_encoder"]
