"""Small helpers shared across the library."""

import os


def cache_root():
    """Root folder for lsrec_hf's on-disk caches: ``$LSREC_HF_CACHE`` or ``~/.cache/lsrec_hf``."""
    return os.environ.get("LSREC_HF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "lsrec_hf")


def progress_bars_off():
    """True when ``TQDM_DISABLE`` asks for no progress bars. tqdm reads it only where no ``disable=`` is passed, and
    the library passes one (bars on the main process alone), so it is honoured here."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
