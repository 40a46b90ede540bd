"""Read fenced code blocks out of the README and the docs pages."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# A fence opens with ``` plus an info string, and closes with ``` alone, at the same indentation.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL
)


@attrs.frozen
class Block:
    """One fenced code block: where it is, its language, its code."""

    page: str
    line: int
    language: str
    code: str

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()

    @property
    def file_name(self) -> str | None:
        """``toy_venue.py`` for a block opening with ``# file: toy_venue.py``."""
        match = re.fullmatch(r"#\s*file:\s*(\S+)", self.first_line)
        return match.group(1) if match else None

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path, language: str | None = None) -> list[Block]:
    """The fenced blocks of ``path`` (only those in ``language`` when given), in page order."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        info = match.group("info").strip().split()
        lang = info[0] if info else ""
        if language is not None and lang != language:
            continue
        indent = len(match.group("indent"))
        code = "\n".join(line[indent:] for line in match.group("code").split("\n"))
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page=path.relative_to(ROOT).as_posix(), line=line, language=lang, code=code))
    return found


def python_blocks(path: Path) -> list[Block]:
    return blocks(path, "python")


def page(name: str) -> Path:
    return DOCS / name


def section(text: str, heading: str) -> str:
    """The text under the markdown heading ``heading`` (any level), up to the next heading of that level or above."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        match = re.match(r"^(#+)\s+(.*)$", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            body = []
            for later in lines[index + 1 :]:
                stop = re.match(r"^(#+)\s", later)
                if stop and len(stop.group(1)) <= level:
                    break
                body.append(later)
            return "\n".join(body)
    msg = f"no heading {heading!r}"
    raise AssertionError(msg)
