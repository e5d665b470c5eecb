"""`--storage-option key=value`: the accepted keys, their checks, and how they
reach s3fs.

`StorageOptions.parse` refuses an unknown or repeated key, a bad value, or
credentials that do not go together, without echoing a secret; the options
never show their secret values (repr, `redacted`) and register them with
pipeline.secrets so that logs mask them. `s3_kwargs` turns them, with the AWS
environment, into S3FileSystem arguments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.secrets import MASK, is_secret_key, redact_text, register_secret

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
DEFAULT_MAX_ATTEMPTS = 4  # botocore's total attempts per request, unless told otherwise


def _text(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _flag(value: str) -> bool:
    if value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"must be one of {'/'.join(_TRUE + _FALSE)}")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _region(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", value):
        raise ValueError("must be a region name such as us-east-1")
    return value


def _verify(value: str) -> bool | str:
    """TLS verification: true/false, or the path of a CA bundle."""
    if value.lower() in _TRUE + _FALSE:
        return _flag(value)
    if not os.path.isfile(value):
        raise ValueError("must be true/false or the path of an existing CA bundle file")
    return value


def _attempts(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError("must be a whole number of attempts, at least 1")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError("must be a positive number of seconds")
    return seconds


def _addressing(value: str) -> str:
    if value not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return value


@dataclass(frozen=True)
class S3Option:
    """One accepted `--storage-option` key: its meaning, its value check (raises
    ValueError saying what is expected), and where s3fs takes it: "fs" (an
    S3FileSystem argument), "client" (client_kwargs), "config" (botocore Config),
    "s3" (Config's s3 section) or "retries" (Config's retry attempts)."""

    help: str
    convert: Callable[[str], Any]
    target: str


S3_OPTIONS: dict[str, S3Option] = {
    "endpoint_url": S3Option("S3 endpoint, http(s)://host[:port] (default: "
                             "AWS_ENDPOINT_URL_S3)",
                             _http_url, "client"),
    "region_name": S3Option("region, e.g. us-east-1 (default: AWS_REGION)", _region,
                            "client"),
    "key": S3Option("access key ID (prefer AWS_ACCESS_KEY_ID: see docs/secrets.md)", _text,
                    "fs"),
    "secret": S3Option("secret access key (prefer AWS_SECRET_ACCESS_KEY)", _text, "fs"),
    "token": S3Option("session token of temporary credentials (prefer AWS_SESSION_TOKEN)",
                      _text, "fs"),
    "profile": S3Option("profile of ~/.aws/credentials and ~/.aws/config (default: "
                        "AWS_PROFILE)",
                        _text, "fs"),
    "anon": S3Option("true: no credentials at all (public buckets)", _flag, "fs"),
    "use_ssl": S3Option("false: plain HTTP even for an https endpoint", _flag, "fs"),
    "requester_pays": S3Option("true: requester-pays buckets", _flag, "fs"),
    "verify": S3Option("TLS certificate check: true/false, or a CA bundle file", _verify,
                       "client"),
    "addressing_style": S3Option("auto, path (most on-premise stores) or virtual",
                                 _addressing, "s3"),
    "max_attempts": S3Option(f"attempts per request (default: AWS_MAX_ATTEMPTS, else "
                             f"{DEFAULT_MAX_ATTEMPTS})", _attempts, "retries"),
    "connect_timeout": S3Option("seconds to wait for a connection (default 5)", _seconds,
                                "config"),
    "read_timeout": S3Option("seconds to wait for an answer (default 60)", _seconds, "config"),
}


def _refuse(message: str) -> NoReturn:
    raise ConfigError(f"--storage-option {message}")


def _unknown_key(key: str) -> str:
    return (f"{key!r} is not a known option; valid keys: {', '.join(sorted(S3_OPTIONS))} "
            "(see docs/secrets.md)")


def _checked_pair(item: str, seen: set[str]) -> tuple[str, str]:
    """(key, value) of one `key=value` item; ConfigError naming what is wrong
    (never echoing a secret value)."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:  # the item itself is not shown: it may be a stray secret
        _refuse("expects key=value (e.g. endpoint_url=http://host:9000); one item has no "
                "key or no '='")
    option = S3_OPTIONS.get(key)
    if option is None:
        _refuse(_unknown_key(key))
    if key in seen:
        _refuse(f"{key!r} is given twice")
    try:
        option.convert(value)
    except ValueError as exc:
        shown = MASK if is_secret_key(key) else redact_text(value)
        _refuse(f"{key}={shown!r}: {key} {exc}")
    seen.add(key)
    return key, value


def _check_combination(keys: set[str]) -> None:
    """Credentials that s3fs would ignore or botocore reject are refused up front."""
    if ("key" in keys) != ("secret" in keys):
        _refuse("key and secret go together: give both (or neither, to use the AWS "
                "environment, a profile or an IAM role)")
    if "token" in keys and "key" not in keys:
        _refuse("token needs key and secret (the token belongs to those temporary credentials)")
    if "anon" in keys and keys & {"key", "secret", "token", "profile"}:
        _refuse("anon cannot be combined with key, secret, token or profile")


class StorageOptions:
    """Extra s3fs options (endpoint, credentials...) from `--storage-option key=value`.

    Immutable, hashable and picklable; `pairs` keeps them as given. Deliberately not
    a dataclass: `dataclasses.asdict` (run records, Ray Data's and Ray Train's
    dashboards) would copy the secrets out, while on a plain object such code falls
    back to repr, which masks them. Constructing one registers its secret values,
    so that vidlake's logging masks them (`pipeline.secrets`).
    """

    __slots__ = ("pairs",)
    pairs: tuple[tuple[str, str], ...]

    def __init__(self, pairs: tuple[tuple[str, str], ...] = ()) -> None:
        object.__setattr__(self, "pairs", tuple(pairs))
        for key, value in self.pairs:
            if is_secret_key(key):
                register_secret(value)

    @classmethod
    def parse(cls, items: list[str] | None) -> StorageOptions:
        """Parse and check `key=value` strings from `--storage-option`; ConfigError
        for an unknown or repeated key, a bad value, or credentials that do not go
        together."""
        seen: set[str] = set()
        pairs = tuple(_checked_pair(item, seen) for item in items or [])
        _check_combination(seen)
        return cls(pairs)

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)

    def redacted(self) -> dict[str, str]:
        """The options with secret values replaced, safe for logs and run records."""
        return {k: (MASK if is_secret_key(k) else redact_text(v)) for k, v in self.pairs}

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("StorageOptions is immutable")

    def __reduce__(self) -> tuple[type[StorageOptions], tuple[tuple[tuple[str, str], ...]]]:
        return (StorageOptions, (self.pairs,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageOptions) and other.pairs == self.pairs

    def __hash__(self) -> int:
        return hash(self.pairs)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"StorageOptions({shown})"

    __str__ = __repr__


def s3_kwargs(options: Mapping[str, str]) -> dict[str, Any]:
    """s3fs keyword arguments: environment endpoint first, explicit options win.

    A bounded retry budget by default: botocore's own default keeps retrying an
    unreachable endpoint for long, which defeats failing fast on systemic errors.
    AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, when set, are left to botocore.
    """
    kwargs: dict[str, Any] = {}
    client: dict[str, Any] = {}
    config: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 60}
    retries: dict[str, Any] = {}
    if "AWS_RETRY_MODE" not in os.environ:
        retries["mode"] = "standard"
    if "AWS_MAX_ATTEMPTS" not in os.environ:
        retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint
    targets = {"fs": kwargs, "client": client, "config": config,
               "s3": config.setdefault("s3", {})}
    for key, value in options.items():
        option = S3_OPTIONS.get(key)
        if option is None:  # StorageOptions built by hand: parse refuses these
            _refuse(_unknown_key(key))
        if option.target == "retries":
            retries["total_max_attempts"] = option.convert(value)
        else:
            targets[option.target][key] = option.convert(value)
    if not config["s3"]:
        del config["s3"]
    config["retries"] = retries
    kwargs["config_kwargs"] = config
    if client:
        kwargs["client_kwargs"] = client
    return kwargs
