"""Media added by hand to converted data, all in one feature shard (tests of shard reruns)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ground.features.shards import shard_of


def add_to_shard(project: Path, data: Path, key: str, shard: int, count: int,
                 write: Callable[[Path, Path, int], None]) -> list[str]:  # fmt: skip
    """Append `count` records to `data`, copies of its first one whose media (`added_<i>` beside
    the first record's) all fall in `shard` of 2; `write(source, target, i)` makes each file."""
    lines = data.read_text().splitlines()
    first = json.loads(lines[0])
    source = Path(first[key])
    candidates = (str(source.with_name(f"added_{i}{source.suffix}")) for i in range(100))
    added = [m for m in candidates if shard_of(m, 2) == shard][:count]
    for i, path in enumerate(added):
        write(project / source, project / path, i)
    rows = (json.dumps(first | {"id": m, key: m}) for m in added)
    data.write_text("\n".join([*lines, *rows]) + "\n")
    return added
