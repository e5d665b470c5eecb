"""Keep credentials out of what vidlake prints and what Ray records (invariant 6).

- `is_secret_key(name)`: option names whose values are credentials (key, secret,
  token, password...).
- `register_secret(value)`: a credential this process holds (StorageOptions
  registers its secret values); `known_secrets()` adds AWS_SECRET_ACCESS_KEY and
  AWS_SESSION_TOKEN from the environment.
- `redact_text(text)`: every known secret and every URL password replaced by `***`.
- `redact_argv(argv)`: a command line with the values of secret-like `KEY=VALUE`
  arguments and `--secret-like VALUE` flags masked too: the entrypoint Ray records
  for a driver (see `pipeline.runner.ray_session.start_ray`).
- `SecretFilter`: a logging filter that masks known secrets in messages and tracebacks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

MASK = "***"
# Option and flag names whose values are credentials.
_SECRET_KEY = re.compile(r"(secret|token|password|passwd|key_id|access_key|credential|^key$)",
                         re.IGNORECASE)
# scheme://user:password@host: the password part.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
# --flag=VALUE, and KEY=VALUE (alone, or as the VALUE of --storage-option=KEY=VALUE).
_FLAG_VALUE = re.compile(r"^(?P<flag>--[A-Za-z][\w-]*)=(?P<rest>.*)$", re.DOTALL)
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*)=")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Shorter values are not credentials, and masking them would garble every log line.
_MIN_SECRET_LEN = 4

_registered: set[str] = set()


def is_secret_key(name: str) -> bool:
    """True when an option or flag called `name` holds a credential."""
    return bool(_SECRET_KEY.search(name.lstrip("-").replace("-", "_")))


def register_secret(value: str) -> None:
    """Remember a credential so that `redact_text` and `SecretFilter` mask it."""
    if len(value) >= _MIN_SECRET_LEN:
        _registered.add(value)


def known_secrets() -> list[str]:
    """Registered secrets and the AWS secrets in the environment, longest first
    (a secret that contains another is masked whole)."""
    values = set(_registered)
    values.update(v for name in _SECRET_ENV
                  if len(v := os.environ.get(name, "")) >= _MIN_SECRET_LEN)
    return sorted(values, key=len, reverse=True)


def redact_url_passwords(text: str) -> str:
    """`scheme://user:password@host` becomes `scheme://user:***@host`."""
    return _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret (or those given) and URL password masked."""
    for secret in known_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    return redact_url_passwords(text)


def redact_arg(arg: str) -> str:
    """One command-line argument: a secret-like `--flag=VALUE` or `KEY=VALUE`
    (also `--storage-option=KEY=VALUE`) keeps its name only."""
    prefix, rest = "", arg
    if flag := _FLAG_VALUE.match(arg):
        if is_secret_key(flag["flag"]):
            return f"{flag['flag']}={MASK}"
        prefix, rest = f"{flag['flag']}=", flag["rest"]
    if (pair := _KEY_VALUE.match(rest)) and is_secret_key(pair["key"]):
        return f"{prefix}{pair['key']}={MASK}"
    return redact_text(arg)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line safe to record: secret-like `KEY=VALUE` values, the value
    after a secret-like flag (`--token VALUE`), known secrets and URL passwords
    are masked; everything else stays, so the command stays recognisable."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        previous = argv[index - 1] if index else ""
        flag_value = (previous.startswith("--") and "=" not in previous
                      and is_secret_key(previous) and not arg.startswith("-"))
        out.append(MASK if flag_value else redact_arg(arg))
    return out


class SecretFilter(logging.Filter):
    """Masks known secrets in a record's message, traceback and stack; never drops
    a record. Install it on handlers: a logger's filters miss child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secrets()
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a malformed call: logging reports it
            return True
        clean = redact_text(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        return True


def filter_log_handlers(logger_names: Iterable[str] = ("", "ray")) -> None:
    """Add a SecretFilter, once, to every handler of these loggers (default: the
    root, and Ray's, which keeps its own handler and does not propagate)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, SecretFilter) for f in handler.filters):
                handler.addFilter(SecretFilter())
