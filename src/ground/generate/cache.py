"""The response cache of the generate step: a directory a team can share (copy, rsync, NFS).

    >>> from ground.generate.cache import ResponseCache, cache_key
    >>> cache = ResponseCache(Path("cache/generate")); cache.get(cache_key(material))

Keys are the sha256 of the canonical JSON of (backend, model, prompt version, request, sampling):
the same request is never paid twice, across runs, crashes and machines.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ground.common.jsonl import write_text_atomic


def cache_key(material: dict[str, Any]) -> str:
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Backend responses on disk at `root/<key[:2]>/<key>.json`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            # A damaged entry is not silently re-bought: someone should look at it first.
            raise ValueError(
                f"{path}: unreadable cache entry ({err!r}); delete it to retry"
            ) from err

    def put(self, key: str, material: dict[str, Any], response: dict[str, Any]) -> None:
        entry = {"key": key, "material": material, "response": response}
        write_text_atomic(self.path(key), json.dumps(entry, indent=1, ensure_ascii=False) + "\n")
