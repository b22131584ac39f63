"""Documents the user removed from the index but kept on disk: never indexed again, by a folder
ingest or live sync, until the user adds them again.

Without this, "remove" lasted until the next start: the file was still in a watched folder, so
reconciliation indexed it again. The list lives beside the index (``excluded.json``) as index
keys (``discovery.path_key``), so a non-UTF-8 file name round-trips; an entry that is a folder
excludes everything under it. A damaged file is read as "nothing excluded" and logged: the worst
case is a document coming back, never a document silently missing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = ["EXCLUSIONS_FILE", "Exclusions"]

log = logging.getLogger(__name__)

EXCLUSIONS_FILE = "excluded.json"


class Exclusions:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: set[str] = self._load()

    def _load(self) -> set[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("ignoring the exclusion list %s: %s", self.path, exc)
            return set()
        keys = data.get("excluded") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            return set()
        return {k for k in keys if isinstance(k, str) and k}

    def _save(self) -> None:
        # Written whole and renamed into place: a crash leaves the old list or the new one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"version": 1, "excluded": sorted(self._keys)}
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def add(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._keys.update(k for k in keys if k)
            self._save()

    def discard(self, keys: Iterable[str]) -> int:
        """Include again: each key, and any excluded entry under a key that is a folder."""
        with self._lock:
            gone: set[str] = set()
            for key in keys:
                prefix = key.rstrip("/") + "/"
                gone.update(k for k in self._keys if k == key or k.startswith(prefix))
            if gone:
                self._keys -= gone
                self._save()
            return len(gone)

    def excludes(self, key: str) -> bool:
        with self._lock:
            if not self._keys:
                return False
            if key in self._keys:
                return True
            return any(key.startswith(k.rstrip("/") + "/") for k in self._keys)
