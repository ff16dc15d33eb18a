"""Several data sets as one: the catalogs and users of each domain side by side, told apart by the domain's name.

A multi-domain pretraining run reads e.g. Amazon Beauty, Toys and Steam at once. Ids of different sets may clash
(item "101" of Beauty is not item "101" of Steam), so every user and item id becomes ``"<domain>:<id>"``; each
event carries its domain in a ``domain`` column (the scenario token of a multi-domain model), and each item in the
catalog's ``domain`` attribute.
"""

import datasets
import numpy as np
import pandas as pd

from ..processing.catalog import ItemCatalog
from .errors import DataError
from .recdataset import RecDataset

DOMAIN = "domain"
SEPARATOR = ":"


def domain_id(domain, external_id):
    """The id of `external_id` of `domain` in a combined data set."""
    return f"{domain}{SEPARATOR}{external_id}"


def combine_domains(parts, names=None):
    """One `RecDataset` of several, each a domain: ids prefixed by the domain's name, a ``domain`` column per event.

    Args:
        parts: the data sets, in the order their catalogs are put side by side.
        names: a name per domain (default each data set's `name`); they must be distinct and free of ``:``.
    """
    parts = list(parts)
    names = list(names) if names is not None else [part.name for part in parts]
    if len(parts) < 2:
        raise DataError(f"combine_domains: {len(parts)} data set(s); several domains are needed to combine")
    if len(names) != len(parts):
        raise DataError(f"combine_domains: {len(names)} names for {len(parts)} data sets")
    for name in names:
        if not name or SEPARATOR in name:
            raise DataError(f"combine_domains: domain name {name!r} must be non-empty and without {SEPARATOR!r}")
    if len(set(names)) != len(names):
        raise DataError(f"combine_domains: domain names {names} repeat; give each data set its own name "
                        f"(two folders of the same name?)")
    columns = [DOMAIN, "user_id", "item_id", "timestamp"]
    tables, item_ids, titles, texts, report = [], [], [], [], {}
    attribute_keys = list(dict.fromkeys(key for part in parts for key in part.catalog.attributes if key != DOMAIN))
    attributes = {key: [] for key in [*attribute_keys, DOMAIN]}
    for name, part in zip(names, parts):
        if DOMAIN in part.interactions.column_names:
            raise DataError(f"combine_domains: {name} already has a {DOMAIN!r} column")
        # each domain's log as a frame, whole: fine at benchmark sizes (bench/scale.py streams a single large one)
        frame = part.interactions.select_columns(["user_id", "item_id", "timestamp"]).to_pandas()
        frame["user_id"] = name + SEPARATOR + frame["user_id"]
        frame["item_id"] = name + SEPARATOR + frame["item_id"]
        frame.insert(0, DOMAIN, name)
        tables.append(frame[columns])
        catalog = part.catalog
        item_ids += [domain_id(name, item) for item in catalog.item_ids]
        titles += catalog.titles
        texts += catalog.texts
        for key in attribute_keys:
            attributes[key] += list(catalog.attributes.get(key, [""] * len(catalog)))
        attributes[DOMAIN] += [name] * len(catalog)
        for key, value in part.report.items():
            report[f"{name}_{key}"] = value
    frame = pd.concat(tables, ignore_index=True)
    report["interactions"] = len(frame)
    interactions = datasets.Dataset.from_pandas(frame, preserve_index=False)
    catalog = ItemCatalog(item_ids, titles, texts, attributes)
    return RecDataset(interactions, catalog, None, "+".join(names), report)


def with_domain(data, name=None):
    """`data` (one domain) with a ``domain`` column naming it on every event (default its `name`): what a model
    pretrained on several domains reads as its domain token (a domain it never saw counts as unknown)."""
    if DOMAIN in data.interactions.column_names:
        return data
    name = name or data.name
    interactions = data.interactions.add_column(DOMAIN, [name] * data.interactions.num_rows)
    return RecDataset(interactions, data.catalog, data.users, data.name, data.report)


def user_domains(user_ids):
    """The domain of each user id of a combined data set (the part before ``:``)."""
    return [user.split(SEPARATOR, 1)[0] for user in user_ids]


def domain_weights(domains, alpha):
    """Sampling weight per user so that each domain's share of an epoch is ∝ its users ** `alpha`.

    `alpha` 1 keeps the data's proportions, 0 gives every domain the same share (small domains repeated, large ones
    subsampled), 0.5 is between (the temperature sampling of multilingual pretraining). Weights sum to 1.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"domain_weights: alpha must be in [0, 1], got {alpha}")
    names, inverse, counts = np.unique(np.asarray(domains, dtype=object).astype(str), return_inverse=True,
                                       return_counts=True)
    share = counts.astype(float) ** alpha
    share /= share.sum()
    weights = share[inverse] / counts[inverse]
    return weights / weights.sum()


__all__ = ["DOMAIN", "combine_domains", "domain_id", "domain_weights", "user_domains", "with_domain"]
