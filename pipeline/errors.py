"""Exception types that separate systemic failures from per-item ones.

Per-video and per-unit problems are data (a status and a reason in a row);
these exceptions are for faults that make a whole run pointless, and they
carry a message that tells the user what to fix.
"""


class ConfigError(ValueError):
    """A flag or configuration value is invalid (bad --sample, unknown model...)."""


class StorageError(RuntimeError):
    """Storage is unreachable, credentials are refused, or the output is not writable."""


class LakeBusy(RuntimeError):
    """Another run holds the lake's lock (see pipeline/lake/lake_lock.py)."""


class RunFailed(RuntimeError):
    """A run stopped part-way (storage went away, the lock was lost): what it
    committed stays, and a rerun continues from there."""
