"""User states on disk: one safetensors file per user (`UserState.save`) and a SQLite index of their events.

An update is acknowledged only once it is durable, in this order: the new state goes to a temporary file, is
fsynced and renamed to a new versioned name (the old file stays); then one SQLite transaction (synchronous=FULL)
adds the events and points the user's row at the new file. A crash before the commit leaves the old file and the old
row, which still agree (the orphan new file is removed on the next start); a crash after it leaves the new ones. The
old file is deleted last. So a `kill -9` at any moment loses no acknowledged event and never mixes two versions.
"""

import hashlib
import os
import sqlite3
import threading

import torch

from ..user_state import UserState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, state_file TEXT NOT NULL, num_events INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (user_id TEXT NOT NULL, position INTEGER NOT NULL, item_id TEXT NOT NULL,
                                   PRIMARY KEY (user_id, position));
"""


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UserStore:
    """The users' states under `directory` (`index.sqlite` and `states/`). Thread-safe; one writer process."""

    def __init__(self, directory):
        self.directory = directory
        self.states = os.path.join(directory, "states")
        os.makedirs(self.states, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(os.path.join(directory, "index.sqlite"), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        self._db.executescript(_SCHEMA)
        self._remove_orphans()

    def _remove_orphans(self):
        """State files no row points at: written by an update that crashed before its commit, or left by a cleanup."""
        referenced = {row[0] for row in self._db.execute("SELECT state_file FROM users")}
        for name in os.listdir(self.states):
            if name not in referenced:
                os.remove(os.path.join(self.states, name))

    def get(self, user_id):
        """`(UserState, num_events)` of a stored user, or `None`."""
        with self._lock:
            row = self._db.execute("SELECT state_file, num_events FROM users WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        return UserState.load(os.path.join(self.states, row[0])), row[1]

    def history(self, user_id, limit=None):
        """The user's latest `limit` item ids (all when `None`), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT item_id FROM events WHERE user_id = ? ORDER BY position DESC LIMIT ?",
                                    (user_id, -1 if limit is None else limit)).fetchall()
        return [row[0] for row in reversed(rows)]

    def empty_state(self):
        return UserState(torch.zeros(0, dtype=torch.long))

    def commit(self, user_id, state, new_item_ids, num_events_before):
        """Store `state` as the user's, with `new_item_ids` appended to the events; durable when it returns."""
        key = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]  # any user id makes a safe file name
        name = f"{key}.{num_events_before + len(new_item_ids)}.safetensors"
        path = os.path.join(self.states, name)
        temporary = path + ".tmp"
        state.save(temporary)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
        _fsync_dir(self.states)
        with self._lock:
            old = self._db.execute("SELECT state_file FROM users WHERE user_id = ?", (user_id,)).fetchone()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO events (user_id, position, item_id) VALUES (?, ?, ?)",
                                     [(user_id, num_events_before + i, item) for i, item in enumerate(new_item_ids)])
                self._db.execute("INSERT INTO users (user_id, state_file, num_events) VALUES (?, ?, ?) "
                                 "ON CONFLICT(user_id) DO UPDATE SET state_file = excluded.state_file, "
                                 "num_events = excluded.num_events",
                                 (user_id, name, num_events_before + len(new_item_ids)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                os.remove(path)
                raise
        if old is not None and old[0] != name:
            os.remove(os.path.join(self.states, old[0]))

    def close(self):
        with self._lock:
            self._db.close()
