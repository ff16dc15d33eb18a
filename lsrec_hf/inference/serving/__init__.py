"""`lsrec serve`: the recommendation pipeline over HTTP, with user states that survive a crash.

One concern per file: `app` (the endpoints), `store` (user states on disk), `batching` (requests scored together),
`metrics` (request counts and latency). Needs the `serve` extra: `pip install "lsrec_hf[serve]"`.
"""

from .app import create_app
from .store import UserStore

__all__ = ["create_app", "UserStore"]
