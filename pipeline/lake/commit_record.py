"""CommitRecord: the durable fact that a set of units is in the lake.

Writing the record is the commit point of the protocol (see ParquetLake).
It lists the table files it publishes and the outcome of every unit it
covers, so a later run knows what is done without reading the tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class UnitOutcome:
    """What happened to one unit: enough to rebuild its video's `videos` row."""

    video_key: str  # VideoRef.content_key
    status: str  # "ok" or "error"
    error: str | None
    decoder: str
    decoder_n_frames: int
    frames: int  # frames analysed
    # analysis name -> small JSON-able facts a video-level step needs later
    # (a shot detector's cuts), durable here so a resumed video still has them
    summaries: dict[str, Any] = field(default_factory=dict)


@dataclass
class CommitRecord:
    """One commit.

    - `files`: file key (a table, or a table's partition folder) -> the file it
      publishes, relative to the lake root;
    - `units`: unit id -> outcome;
    - `videos_done` / `videos_failed`: video markers (`<video_key>:<analysis_key>`)
      whose video finished ok, or failed (with the reason), in this commit;
    - `uris`: video_key -> uri of the videos those markers name (to tell a new
      video from a changed one);
    - `removed`: files this commit deletes (a compaction's merged inputs).
    """

    commit_id: str
    run_id: str
    files: dict[str, str] = field(default_factory=dict)
    units: dict[str, UnitOutcome] = field(default_factory=dict)
    videos_done: list[str] = field(default_factory=list)
    videos_failed: dict[str, str] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        data = asdict(self)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitRecord:
        data = json.loads(raw)
        units = {k: UnitOutcome(**v) for k, v in data.get("units", {}).items()}
        return cls(commit_id=data["commit_id"], run_id=data["run_id"],
                   files=data.get("files", {}), units=units,
                   videos_done=data.get("videos_done", []),
                   videos_failed=data.get("videos_failed", {}),
                   uris=data.get("uris", {}), removed=data.get("removed", []))
