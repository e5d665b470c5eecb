"""Logging for entry points: progress and warnings on stderr, results on stdout.

The handlers of the root logger and of Ray's logger (which does not propagate)
get a `SecretFilter`: credentials vidlake knows of (storage-option secrets,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment) and URL
passwords are masked in messages and tracebacks. `start_ray` filters Ray's
handlers again once Ray has set them up.
"""

import logging
import sys

from pipeline.secrets import filter_log_handlers


def configure(verbose: bool = False) -> None:
    """Log to stderr (DEBUG with `verbose`, else INFO), with secrets masked."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("botocore", "s3fs", "aiobotocore", "fsspec", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    filter_log_handlers()
