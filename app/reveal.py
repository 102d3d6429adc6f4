"""What reviewers read is what is there: characters that do not show, or that reorder what is shown,
written out as escapes.

Everything a reviewer reads about a held call (tool, agent and upstream names, arguments, reasons,
results, audit details) is agent-controlled text. Bidirectional overrides and isolates (U+202A…
U+202E, U+2066…U+2069) make text display in another order than it runs ("Trojan Source",
CVE-2021-42574); zero-width and other invisible characters hide differences between two names
that look the same. `reveal` is the one place that decides which characters those are and how they
are written; every channel (Slack, the inbox, the CLI, decision errors) calls it, and the inbox
adds styling on top through `pieces` (see `app/inbox/render.py`).

Revealed, and written as `\\uXXXX` (UTF-16 code units, so inside JSON text the escape is still
valid JSON and reads as the exact value):

- every character of the Unicode categories Cc (controls), Cf (format: bidi controls, zero-width
  spaces and joiners, soft hyphen, U+180E, BOM, tag characters…), Co (private use), Cs
  (surrogates), Cn (unassigned), Zl and Zp (U+2028, U+2029);
- spaces other than U+0020 (category Zs: no-break, en/em, ideographic…), which look like an
  ordinary space but are not one;
- characters that are letters or marks by category but render as nothing: combining grapheme
  joiner, Hangul fillers, Khmer inherent vowels, Mongolian variation selectors, variation
  selectors, the braille blank.

`\\n` and `\\t` are kept where text is laid out on several lines (arguments, results, reasons); in
one-line values (names) pass `line=True` and they are revealed too.

Pure module: str in, str out; no I/O. Applying it twice gives the same text as once. Deliberate
departure: a literal backslash is not escaped, so a name that spells `\\u202e` in ASCII reads the
same as one holding U+202E in plain-text channels (Slack, the CLI); the inbox tells them apart by
styling only real escapes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Final

_INVISIBLE_BY_CATEGORY: Final = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp", "Zs"})
_INVISIBLE_LETTERS: Final = frozenset(
    [
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        0x180B,
        0x180C,
        0x180D,
        0x180F,
        0x2800,
        0x3164,
        0xFFA0,
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    ]
)
_SUSPECT: Final = re.compile(r"[^\x20-\x7e]")
"""Everything but printable ASCII is looked at; ASCII letters never need a category lookup."""


def hidden(char: str, *, line: bool = False) -> bool:
    """Whether `char` is revealed (see the module docstring for the set)."""
    if char in "\n\t":
        return line
    if char == " ":
        return False
    return unicodedata.category(char) in _INVISIBLE_BY_CATEGORY or ord(char) in _INVISIBLE_LETTERS


def escape_char(char: str) -> str:
    """`char` as `\\uXXXX` (a surrogate pair of them above U+FFFF)."""
    data = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(data[i : i + 2], 'big'):04x}" for i in range(0, len(data), 2))


def reveal(text: str, *, line: bool = False) -> str:
    """`text` with every hidden character written as an escape (`line=True`: newlines and tabs too)."""
    return "".join(piece if not is_escape else escape_char(piece) for piece, is_escape in pieces(text, line=line))


def pieces(text: str, *, line: bool = False) -> Iterator[tuple[str, bool]]:
    """`text` split into runs of shown text `(run, False)` and single hidden characters `(char, True)`."""
    start = 0
    for match in _SUSPECT.finditer(text):
        char = match.group()
        if not hidden(char, line=line):
            continue
        if match.start() > start:
            yield text[start : match.start()], False
        yield char, True
        start = match.end()
    if start < len(text):
        yield text[start:], False
