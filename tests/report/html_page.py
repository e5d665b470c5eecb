"""Read a written report back: the HTML parsed (every <img>, every table row's
data- attributes, the text), embedded PNGs decoded."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

VOID = {"img", "meta", "br", "hr", "input", "link"}  # elements without an end tag


class Page(HTMLParser):
    """Every <img>'s attributes, every <tr>'s data- attributes with the ids of
    the table and the innermost div around it (and its cells' text, "|"-joined,
    as `text`), the text of each element with an id (`by_id`), and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.rows: list[dict[str, str]] = []
        self.cells: list[dict[str, str]] = []
        self.text: list[str] = []
        self._table: list[str] = []
        self._divs: list[dict[str, str]] = []
        self.by_id: dict[str, str] = {}
        self._open: list[str] = []  # the ids (or "") of the open elements
        self._row: dict[str, str] | None = None  # the data- row being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag not in VOID:
            self._open.append(found.get("id", ""))
            if found.get("id"):
                self.by_id[found["id"]] = ""
        if tag == "img":
            self.images.append(found)
        elif tag == "table":
            self._table.append(found.get("id", ""))
        elif tag == "div":
            self._divs.append(found)
        elif tag == "tr" and any(k.startswith("data-") for k in found):
            div = self._divs[-1] if self._divs else {}
            self._row = {**found, "table_id": self._table[-1], "text": "", **{
                f"div-{k}": v for k, v in div.items()}}
            self.rows.append(self._row)
        elif tag == "span" and found.get("class") == "cell":
            self.cells.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID:
            self._open.pop()
        if tag == "tr":
            self._row = None
        elif tag == "td" and self._row is not None:
            self._row["text"] += "|"
        elif tag == "table":
            self._table.pop()
        elif tag == "div":
            self._divs.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for ident in filter(None, self._open):
            self.by_id[ident] += data
        if self._row is not None:
            self._row["text"] += data


def read_page(path: Path) -> Page:
    """The report at `path`, parsed."""
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def decode_image(attributes: dict[str, str]) -> Image.Image:
    """The PNG inline in an <img>'s src, decoded (it must be a data: URI)."""
    prefix = "data:image/png;base64,"
    assert attributes["src"].startswith(prefix)  # inline: nothing to fetch
    image = Image.open(io.BytesIO(base64.b64decode(attributes["src"][len(prefix):])))
    image.load()
    return image


def table_rows(page: Page, table_id: str) -> list[dict[str, str]]:
    """The rows with data- attributes of the table with id `table_id`."""
    return [r for r in page.rows if r["table_id"] == table_id]
