"""A tiny HTML inspector for tests (stdlib only): elements, attributes and text by id."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Parses a whole page; ``elements`` lists (tag, attrs) in order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, list[str]] = {}
        self._open_ids: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if attributes.get("id"):
            self._open_ids.append((tag, attributes["id"] or ""))
            self.text_by_id.setdefault(attributes["id"] or "", [])

    def handle_endtag(self, tag: str) -> None:
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open_ids:
            self.text_by_id[element_id].append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def text(self, element_id: str) -> str:
        return " ".join(" ".join(self.text_by_id.get(element_id, [])).split())

    def ids(self) -> set[str]:
        return set(self.text_by_id)


IMAGE_SOURCES = ("data:image/png;base64,", "data:image/svg+xml;base64,")
LINK_TARGETS = ("#", "http://", "https://", "mailto:", "data:text/csv;")


def assert_no_live_markup(page: Page) -> None:
    """Only benchinit's own script; no event-handler attributes; images only as data URIs;
    links only to anchors, web pages, mail, CSV data or relative files (nothing that runs)."""
    assert len(page.tags("script")) == 1, "exactly one script: the table tools"
    for tag, attrs in page.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "a" and attrs.get("href") is not None:
            href = (attrs.get("href") or "").strip().lower()
            assert href.startswith(LINK_TARGETS) or ":" not in href.split("/")[0], attrs
    for attrs in page.tags("img"):
        assert (attrs.get("src") or "").startswith(IMAGE_SOURCES), attrs
    for forbidden in ("iframe", "object", "embed", "link", "base"):
        assert not page.tags(forbidden), forbidden
