import pytest
import torch

from lsrec_hf import ItemCatalog, LSRecConfig, LSRecForSequentialRecommendation


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: one thread is faster than two competing for a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_tiny_model(path, titles, seed=0):
    """A small random LSRec model with a catalog of `len(titles)` items (ids m0, m1, ...), saved to `path`."""
    torch.manual_seed(seed)
    num_items = len(titles)
    config = LSRecConfig(num_items=num_items, content_dim=8, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, segment_length=4, memory_length=8, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, initializer_range=0.3)
    model = LSRecForSequentialRecommendation(config)
    model.model.embeddings.content_embeddings.normal_()
    model.catalog = ItemCatalog([f"m{i}" for i in range(num_items)], list(titles), [f"text {i}" for i in range(num_items)])
    model.save_pretrained(path)
    return path
