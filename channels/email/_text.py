"""Mail text for the agent: HTML made plain, quoted history and signatures cut off."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text", "strip_quotes"]

_BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "hr", "section", "article", "header", "footer",
}  # fmt: skip
_SKIP = {"script", "style", "head", "title", "template"}
# Where mail clients put the quoted history and the signature in HTML.
_QUOTE_MARKERS = (
    "gmail_quote", "gmail_signature", "yahoo_quoted", "moz-cite-prefix",
    "divrplyfwdmsg", "appendonsend", "protonmail_quote",
)  # fmt: skip
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}


class _Plain(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden: list[str] = []  # open tags whose content is dropped

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in _BLOCK and not self.hidden:
                self.parts.append("\n")
            return
        marker = " ".join(v or "" for k, v in attrs if k in {"class", "id"}).lower()
        if self.hidden or tag in _SKIP or tag == "blockquote" or _quoted(marker):
            self.hidden.append(tag)
        elif tag in _BLOCK:
            self.parts.append("\n")
        if tag == "li" and not self.hidden:
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if self.hidden:
            if tag in self.hidden:
                while self.hidden and self.hidden.pop() != tag:
                    pass
            return
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def _quoted(marker: str) -> bool:
    return any(m in marker for m in _QUOTE_MARKERS)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML mail part, without its quoted history."""
    parser = _Plain()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# A line that starts the quoted history: "On <date>, <who> wrote:" (possibly wrapped),
# Outlook's "-----Original Message-----" / "From: … Sent: …" block, or its underscore rule.
_ATTRIBUTION = re.compile(
    r"^(on\b.{0,200}\bwrote:|le\b.{0,200}\ba écrit\s?:|am\b.{0,200}\bschrieb\b.{0,80}:"
    r"|-{2,}\s*original message\s*-{2,}|-{2,}\s*forwarded message\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_HEADER = re.compile(r"^(from|von|de):\s.+", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(-- ?|sent from my .{1,40}|get outlook for .{1,40})$", re.IGNORECASE)


def strip_quotes(text: str) -> str:
    """Keep what the sender wrote: drop ``>`` quotes, quoted history and the signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        bare = line.strip()
        if _SIGNATURE.match(line.rstrip()) or _SIGNATURE.match(bare):
            break
        if _ATTRIBUTION.match(bare) or (
            bare.lower().startswith(("on ", "le ", "am "))
            and any(
                _ATTRIBUTION.match(" ".join(x.strip() for x in lines[index : index + n]))
                for n in (2, 3)
            )
        ):
            break
        if _OUTLOOK_HEADER.match(bare) and any(
            re.match(r"^(sent|gesendet|envoyé|date):", x.strip(), re.IGNORECASE)
            for x in lines[index + 1 : index + 3]
        ):
            break
        if bare.startswith(">"):
            continue
        kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
