"""Documents the user removed from the index but kept on disk: never indexed again, by a folder
ingest or live sync, until the user adds them again.

Without this, "remove" lasted until the next start: the file was still in a watched folder, so
reconciliation indexed it again. The list lives beside the index (``excluded.json``) as index
keys (``discovery.path_key``), so a non-UTF-8 file name round-trips; an entry that is a folder
excludes everything under it. A damaged file is read as "nothing excluded" and logged: the worst
case is a document coming back, never a document silently missing.

Several processes share the list (the app, ``almanac remove``, ``almanac watch``): each read sees
what another process last wrote, and each change is made to the list as it is on disk.
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
        self._seen: tuple[int, int, int] | None = self._stamp()
        self._keys: set[str] = self._load()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        """Read the list again when another process (or another Exclusions) has replaced it."""
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            self._keys = self._load()

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
        self._seen = self._stamp()

    def keys(self) -> list[str]:
        with self._lock:
            self._refresh()
            return sorted(self._keys)

    def add(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._refresh()
            self._keys.update(k for k in keys if k)
            self._save()

    def forget(self, keys: Iterable[str]) -> int:
        """Drop exactly these entries (not what lies under them); how many there were."""
        with self._lock:
            self._refresh()
            gone = self._keys & set(keys)
            if gone:
                self._keys -= gone
                self._save()
            return len(gone)

    def discard(self, keys: Iterable[str]) -> int:
        """Include again: each key, and any excluded entry under a key that is a folder."""
        with self._lock:
            self._refresh()
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
            self._refresh()
            if not self._keys:
                return False
            if key in self._keys:
                return True
            return any(key.startswith(k.rstrip("/") + "/") for k in self._keys)
