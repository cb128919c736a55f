"""Every page a person can reach by following links, visited as that person: for the crawl test
(no server error, no broken link, on any page of any role) and `bench/web_pages.py` (how long
each page takes on the demo's data).

Same-site GET links and images only; sign-out, downloads (`download` links, PDFs, CSVs) and
links with a scheme or host are left alone. Pages of one shape (`/runs/7/`, `/runs/9/`: digits
replaced) are visited at most `per_shape` times, so a long list does not mean a thousand detail
pages."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

SKIP = re.compile(r"/accounts/logout/|/pdf/?$|\.pdf$|\.csv$|^/admin/|^/api/|^/static/")


@dataclass(frozen=True)
class Visit:
    url: str
    status: int
    seconds: float
    found_on: str


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and "download" not in values and values.get("href"):
            self.links.append(values["href"] or "")
        elif tag == "img" and values.get("src") and not (values["src"] or "").startswith("data:"):
            self.links.append(values["src"] or "")  # figures are requests of the page too


def links_of(html: str, base: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    found = []
    for href in parser.links:
        url = urlparse(urljoin(base, href))
        if url.scheme not in ("", "http") or (url.netloc and url.netloc != "testserver"):
            continue
        path = url.path + (f"?{url.query}" if url.query else "")
        if url.path and not SKIP.search(url.path):
            found.append(path)
    return found


def shape(url: str) -> str:
    return re.sub(r"\d+", "N", url.split("?")[0]) + ("?" if "?" in url else "")


def crawl(client, start: str = "/", *, per_shape: int = 3, limit: int = 300) -> list[Visit]:
    """Visit every page reachable from `start` with `client` (a signed-in django.test.Client)."""
    seen = {start}
    queue = [(start, "")]
    shapes: dict[str, int] = {}
    visits: list[Visit] = []
    while queue and len(visits) < limit:
        url, found_on = queue.pop(0)
        began = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - began
        visits.append(Visit(url, response.status_code, seconds, found_on))
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        for link in links_of(response.content.decode(), url):
            key = shape(link)
            if link in seen or shapes.get(key, 0) >= per_shape:
                continue
            seen.add(link)
            shapes[key] = shapes.get(key, 0) + 1
            queue.append((link, url))
    return visits
