"""`app/reveal.py`: which characters a reviewer is shown as escapes, and how.

Provenance: Airlock-defined (issue 10, class 6: "what reviewers read is what is there"), after
"Trojan Source" (CVE-2021-42574) and the Unicode categories of UAX #44.
"""

from __future__ import annotations

import json

import pytest

from app.reveal import pieces, reveal

HIDDEN = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",  # zero-width, LRM/RLM
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # bidi embeddings and overrides
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",  # bidi isolates
    "\ufeff",
    "\u00ad",
    "\u180e",
    "\u2028",
    "\u2029",
    "\u2060",  # BOM, soft hyphen, separators, word joiner
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\ue000",
    "\U000e0041",  # controls, private use, a tag character
    "\u00a0",
    "\u3000",
    "\u034f",
    "\u3164",
    "\ufe0f",
    "\u2800",  # look-alike spaces and blank "letters"
]


@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_each_hidden_character_is_written_as_its_escape(char: str) -> None:
    shown = reveal(f"a{char}b")
    assert char not in shown and shown.isascii()
    assert json.loads(f'"{shown}"') == f"a{char}b", "the escape reads back as the exact character"


def test_ordinary_text_is_left_alone_in_any_script() -> None:
    text = 'café 日本語 Ελληνικά emoji \U0001f600 "quotes" \\ back'
    assert reveal(text) == text


def test_newlines_and_tabs_stay_in_text_but_are_revealed_in_one_line_names() -> None:
    assert reveal("a\nb\tc") == "a\nb\tc"
    assert reveal("a\nb\tc", line=True) == "a\\u000ab\\u0009c"


def test_reveal_is_idempotent_and_pieces_mark_only_the_hidden_characters() -> None:
    once = reveal("rm \u202eexe.txt\u200b")
    assert reveal(once) == once == "rm \\u202eexe.txt\\u200b"
    assert list(pieces("x\u202ey")) == [("x", False), ("\u202e", True), ("y", False)]
