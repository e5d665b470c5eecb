"""CommitRecord: the durable fact that a set of units is in the lake.

Writing the record is the commit point of the protocol (see ParquetLake).
It lists the table files it publishes and the outcome of every unit it
covers, so a later run knows what is done without reading the tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


class RecordDamaged(ValueError):
    """A commit record that is not a CommitRecord's JSON (truncated, garbage, a
    field of the wrong type); the message says what is wrong."""


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


# Fields a repair adds; left out of the JSON when empty, so ordinary records
# stay as older versions of vidlake wrote and read them.
_RETIRE_FIELDS = ("retired_markers", "retired_units")


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
    - `removed`: files this commit deletes (a compaction's merged inputs);
    - `retired_markers` / `retired_units`: markers and units that earlier
      commits recorded and this one takes back (`vidlake check --repair`, after
      their rows were lost): as if never done, so the next run redoes them.
    """

    commit_id: str
    run_id: str
    files: dict[str, str] = field(default_factory=dict)
    units: dict[str, UnitOutcome] = field(default_factory=dict)
    videos_done: list[str] = field(default_factory=list)
    videos_failed: dict[str, str] = field(default_factory=dict)
    uris: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    retired_markers: list[str] = field(default_factory=list)
    retired_units: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        data = asdict(self)
        for name in _RETIRE_FIELDS:
            if not data[name]:
                del data[name]
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitRecord:
        """Parse a record; RecordDamaged when it is not one (fields a record of an
        older version lacks take their defaults)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise RecordDamaged(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise RecordDamaged(f"a JSON {type(data).__name__}, not an object")
        return cls(commit_id=_text(data, "commit_id"), run_id=_text(data, "run_id"),
                   files=_mapping(data, "files"), units=_units(data),
                   videos_done=_texts(data, "videos_done"),
                   videos_failed=_mapping(data, "videos_failed"),
                   uris=_mapping(data, "uris"), removed=_texts(data, "removed"),
                   retired_markers=_texts(data, "retired_markers"),
                   retired_units=_texts(data, "retired_units"))


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise RecordDamaged(f"field {name!r} is missing or not a string")
    return value


def _texts(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordDamaged(f"field {name!r} is not a list of strings")
    return value


def _mapping(data: dict[str, Any], name: str) -> dict[str, str]:
    value = data.get(name, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RecordDamaged(f"field {name!r} is not an object of strings")
    return value


def _units(data: dict[str, Any]) -> dict[str, UnitOutcome]:
    value = data.get("units", {})
    if not isinstance(value, dict):
        raise RecordDamaged("field 'units' is not an object")
    try:
        units = {key: UnitOutcome(**outcome) for key, outcome in value.items()}
    except TypeError as exc:  # not a mapping, a field missing or unknown
        raise RecordDamaged(f"a unit outcome is malformed ({exc})") from None
    if not all(isinstance(o.video_key, str) and isinstance(o.status, str)
               for o in units.values()):
        raise RecordDamaged("a unit outcome's video_key or status is not a string")
    return units
