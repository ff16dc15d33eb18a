"""Small helpers shared across the library."""

import os


def cache_root():
    """Root folder for lsrec_hf's on-disk caches: ``$LSREC_HF_CACHE`` or ``~/.cache/lsrec_hf``."""
    return os.environ.get("LSREC_HF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lsrec_hf")
