"""Beyond-accuracy figures of top-K lists: catalog coverage, intra-list diversity and novelty.

    coverage@K   share of the catalog that appears in at least one user's top-K
    diversity@K  mean over users of the mean pairwise cosine distance (1 - cos) of the top-K items'
                 content embeddings (intra-list diversity, Ziegler et al. 2005)
    novelty@K    mean self-information -log2 p(i) of the recommended items, p(i) = share of training
                 users who interacted with i (Zhou et al. 2010); unseen items count as seen by one user
"""

import numpy as np
import torch


def catalog_coverage(ranked_lists, num_items, k=10):
    items = {int(i) for ranked in ranked_lists for i in list(ranked)[:k]}
    return len(items) / num_items


def intra_list_diversity(ranked_lists, item_embeddings, k=10):
    embeddings = torch.nn.functional.normalize(torch.as_tensor(item_embeddings, dtype=torch.float32), dim=-1)
    top = torch.as_tensor(np.asarray([list(r)[:k] for r in ranked_lists], dtype=np.int64))
    if top.shape[1] < 2:
        raise ValueError(f"intra_list_diversity needs lists of 2 or more items, got {top.shape[1]}")
    vectors = embeddings[top]  # users x k x d
    similarity = vectors @ vectors.transpose(1, 2)
    n = top.shape[1]
    off_diagonal = (similarity.sum(dim=(1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(dim=1)) / (n * (n - 1))
    return float((1.0 - off_diagonal).mean())


def novelty(ranked_lists, train_sequences, num_items, k=10):
    users_per_item = np.zeros(num_items, dtype=np.float64)
    for sequence in train_sequences:
        users_per_item[np.unique(sequence)] += 1
    probability = np.maximum(users_per_item, 1.0) / max(len(train_sequences), 1)
    top = np.asarray([list(r)[:k] for r in ranked_lists], dtype=np.int64)
    return float(-np.log2(probability[top]).mean())


def beyond_accuracy_metrics(ranked_lists, train_sequences, num_items, item_embeddings=None, k=10):
    """Coverage, novelty and (given content embeddings) diversity of the top-`k` lists."""
    metrics = {f"coverage@{k}": catalog_coverage(ranked_lists, num_items, k),
               f"novelty@{k}": novelty(ranked_lists, train_sequences, num_items, k)}
    if item_embeddings is not None:
        metrics[f"diversity@{k}"] = intra_list_diversity(ranked_lists, item_embeddings, k)
    return metrics
