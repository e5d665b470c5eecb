"""CommitLog: the lake's commit log as one read of it sees it.

A log is the newest checkpoint (checkpoint.py; none in a young lake) and the
commit records it does not cover, the tail. Everything a run, a reader or
`vidlake check` asks of the log is answered from the two together, so the
cost of a start grows with the lake's size, not with the number of commits
ever made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa

from pipeline.lake import checkpoint
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.lake_state import LakeState

RETIRED_DIR = "_retired"  # under _commits/: records a checkpoint covers, kept for repairs
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d{10})\.parquet$")


def checkpoint_name(seq: int) -> str:
    return f"checkpoint-{seq:010d}.parquet"


def checkpoint_seq(name: str) -> int | None:
    """The sequence number of a checkpoint file's name; None for other names."""
    found = _CHECKPOINT_NAME.match(name)
    return int(found.group(1)) if found else None


@dataclass
class CommitLog:
    """The newest readable checkpoint (`seq` 0: none) and the tail records, in
    commit-id order. `covered`: record files (names under `_commits/`) still
    there although the checkpoint covers them, waiting to be retired."""

    base: checkpoint.Checkpoint = checkpoint.EMPTY
    tail: list[CommitRecord] = field(default_factory=list)
    seq: int = 0
    covered: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Commits in the log, folded or not."""
        return len(self.base_ids) + len(self.tail)

    @cached_property
    def base_ids(self) -> set[str]:
        return set(checkpoint.commit_ids(self.base))

    def state(self) -> LakeState:
        """What is done, failed and started (a fresh object on every call)."""
        state = checkpoint.state_of(self.base)
        for record in self.tail:
            state.add(record)
        return state

    @cached_property
    def publishers(self) -> dict[str, tuple[str, str]]:
        """Every file ever published: rel -> (commit id, file key)."""
        found = checkpoint.files_of(self.base)
        for record in self.tail:
            found.update({rel: (record.commit_id, key) for key, rel in record.files.items()})
        return found

    @cached_property
    def removed(self) -> dict[str, str]:
        """Every file a commit removed: rel -> that commit's id."""
        found = checkpoint.removed_of(self.base)
        for record in self.tail:
            found.update(dict.fromkeys(record.removed, record.commit_id))
        return found

    def merged_away(self, present: set[str]) -> set[str]:
        """Files that compactions replaced with a merged file that is `present`."""
        outputs: dict[str, list[str]] = {}
        for rel, (cid, _) in self.publishers.items():
            outputs.setdefault(cid, []).append(rel)
        return {rel for rel, cid in self.removed.items()
                if all(out in present for out in outputs.get(cid, ()))}

    def commit_ids(self) -> set[str]:
        """Every commit in the log."""
        return self.base_ids | {r.commit_id for r in self.tail}

    def newest_id(self, matching: re.Pattern[str] | None = None) -> str | None:
        """The greatest commit id (of those `matching`, when given)."""
        ids = [c for c in self.commit_ids() if matching is None or matching.match(c)]
        return max(ids, default=None)

    @cached_property
    def records(self) -> dict[str, CommitRecord]:
        """Commit id -> what it did, as far as the log still says (a folded
        commit's record holds the facts no later commit replaced)."""
        found = checkpoint.records_of(self.base) if self.seq else {}
        found.update({r.commit_id: r for r in self.tail})
        return found

    def folded(self) -> pa.Table:
        """The checkpoint of this whole log."""
        return checkpoint.fold(self.base, self.tail)

    def due(self, every: int) -> bool:
        """True when a checkpoint should be written: `every` tail records or more
        (0: never), or covered records left by an interrupted checkpoint."""
        return (every > 0 and len(self.tail) >= every) or bool(self.covered)
