"""Exception types that separate systemic failures from per-item ones.

Per-video and per-unit problems are data (a status and a reason in a row);
these exceptions are for faults that make a whole run pointless, and they
carry a message that tells the user what to fix.
"""


class ConfigError(ValueError):
    """A flag or configuration value is invalid (bad --sample, unknown model...)."""


class StorageError(RuntimeError):
    """Storage is unreachable, credentials are refused, or the output is not writable."""
