"""ListingFeed: SOURCE's listing, read ahead in a thread, a bounded queue deep.

Listing a large prefix is a LIST request per thousand objects; reading pages
in a thread lets the run plan, probe and decode the first pages while later
ones are still being listed (and while Ray starts), and the queue's depth
bounds what the driver holds: at most `depth` pages listed and not yet taken.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pipeline.corpus.listing import VIDEO_EXTENSIONS
from pipeline.corpus.video_ref import VideoRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Page:
    refs: list[VideoRef]
    seconds: float  # the listing thread's time getting it


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


class ListingFeed:
    """Iterate to get SOURCE's videos, in listing order; `listed` counts them,
    `finished` says the listing got to its end. A listing error is raised
    where the iteration is. Close it to stop the thread (a with block does)."""

    def __init__(self, pages: Callable[[], Iterator[list[VideoRef]]], source: str, *,
                 depth: int = 4, on_page: Callable[[int, float], None] = lambda n, s: None,
                 ) -> None:
        """`pages`: makes the listing's page iterator (called in the thread);
        `on_page(videos, seconds)`: called, where the iteration is, per page."""
        self.source = source
        self.listed = 0
        self.finished = False
        self._on_page = on_page
        self._queue: queue.Queue[_Page | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._list, args=(pages,), daemon=True,
                                        name="vidlake-list")
        self._thread.start()

    def _list(self, pages: Callable[[], Iterator[list[VideoRef]]]) -> None:
        try:
            listing = pages()
            while True:
                began = time.perf_counter()
                page = next(listing, None)
                if page is None or not self._put(_Page(page, time.perf_counter() - began)):
                    break
            self._put(_End())
        except BaseException as exc:
            # Broad on purpose: this thread only lists; whatever ended it (a
            # StorageError, a ConfigError for a bad manifest, a bug) belongs to
            # the run, so it is re-raised where the listing is used. If the run
            # has already stopped listening, it is logged instead of lost.
            if not self._put(_End(exc)):
                log.warning("listing %s stopped after the run: %s: %s", self.source,
                            type(exc).__name__, exc)

    def _put(self, item: _Page | _End) -> bool:
        """Queue `item`, waiting for room; False once closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[VideoRef]:
        while not self.finished:
            item = self._queue.get()
            if isinstance(item, _End):
                self.finished = True
                if item.error is not None:
                    raise item.error
                self._log_end()
                return
            self.listed += len(item.refs)
            self._on_page(len(item.refs), item.seconds)
            yield from item.refs

    def _log_end(self) -> None:
        log.info("listed %d videos in %s", self.listed, self.source)
        if not self.listed:
            log.warning("SOURCE %s holds no videos (looked for files named %s)", self.source,
                        " ".join(sorted(VIDEO_EXTENSIONS)))

    def close(self) -> None:
        """Stop listing (a page being listed is finished first, in the thread)."""
        self._stop.set()

    def __enter__(self) -> ListingFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
