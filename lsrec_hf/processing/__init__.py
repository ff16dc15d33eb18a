"""Processing: item tokens, the catalog, user sequences and splits, side features, batches; imports only the data stage."""
