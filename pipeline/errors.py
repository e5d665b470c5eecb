"""Exception types that separate systemic failures from per-item ones.

Per-video and per-unit problems are data (a status and a reason in a row);
these exceptions are for faults that make a whole run pointless, and they
carry a message that tells the user what to fix.
"""


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of blanks made single spaces: a
    library's multi-line message as part of a one-line error."""
    return " ".join(text.split())


class ConfigError(ValueError):
    """A flag or configuration value is invalid (bad --sample, unknown model...)."""


class StorageError(RuntimeError):
    """Storage is unreachable, credentials are refused, or the output is not writable."""


class LakeBusy(RuntimeError):
    """Another run holds the lake's lock (see pipeline/lake/lake_lock.py)."""


class RunFailed(RuntimeError):
    """A run stopped part-way (storage went away, the lock was lost): what it
    committed stays, and a rerun continues from there."""


class LakeDamaged(StorageError):
    """The lake's commit log holds records that cannot be read: writers refuse to
    plan or commit over it (what is done is unknown); `vidlake check --repair`
    sets it right."""


class RunInterrupted(RuntimeError):
    """The user stopped a run (Ctrl-C): what it committed stays, and the same
    command continues from there. The message says what was committed."""
