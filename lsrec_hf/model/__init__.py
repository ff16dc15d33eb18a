"""Model: LSRecConfig, the LSRec model, its checkpoint I/O and top-k retrieval; imports data, processing (and sharing's card and paths)."""
