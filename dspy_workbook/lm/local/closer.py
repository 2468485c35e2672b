"""Answers that stop when they are done: close a JSON string when the model wants to end it.

The JSON grammar opens every string value with a quote, also where the model meant to write a
bare value ("answer": 20 …). Measured on the labelled and held-out questions (2026-12): the model
then writes ``20`` and its next choice is `` }``, a newline or end-of-turn — it considers the value
finished. Inside a string the grammar forbids end-of-turn and newlines and accepts `` }`` as text,
so the answer went on until its length bound: "20 } 20 / 4 = 4.2222…" (202 tokens),
"100.0 Celsius }  # 1. The boiling …", "100, answer: 100} 2000000000 …". In each case the closing
quote was the model's second choice, a fraction of a logit behind.

`StringCloser` reads that intent: inside a string that already holds a character, if the token
the model would pick (after the repetition guard) is end-of-turn, or starts with a newline, ``}``
or ``]`` (optionally after spaces; a bracket the string itself opened may close: "[name]"), the
closing quote is picked instead and the grammar carries on (``,`` and the next field, or ``}``).

One tie is broken towards the end, too: at a sentence end, if the model's pick is ``.`` (or ``!``,
``?``) and the same mark with the closing quote (``."``, ``.",`` …) is within `SENTENCE_TIE`
logits of it, the string closes there. Measured: "How many days are in a leap year?" → "A leap
year is a year that is not a century year." had ``.`` 24.6 against ``."`` 24.4 and went on to its
200-character bound; of the 11 sentence ends on the labelled set where ``.`` won, one was that
close (median gap 5 logits). Nothing else changes: an answer that continues with words is never
cut, and the bounds derived from ``max_tokens`` still guarantee the JSON closes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["JsonStrings", "StringCloser"]

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")
# A token that ends a JSON value in the model's eyes: a newline, or a closing brace or bracket.
_ENDS_VALUE = re.compile(rb"[ \t]*([\r\n}\]])")
_SENTENCE_ENDS = (b".", b"!", b"?")
SENTENCE_TIE = 0.5  # logits: "." this close to '."' counts as a tie


class JsonStrings:
    """Follows a JSON text token by token: inside a string or not, the string's length, and
    whether the outermost object or array has closed (`complete`)."""

    def __init__(self) -> None:
        self.inside = False
        self.length = 0  # bytes written in the current string
        self.brackets = 0  # "[" and "{" opened in the current string and not closed yet
        self.depth = 0  # objects and arrays open outside strings
        self.complete = False
        self._escaped = False

    def feed(self, piece: bytes) -> bool:
        """Advance over `piece`; True if a string was opened in it."""
        opened = False
        for byte in piece:
            if self._escaped:
                self._escaped = False
                self.length += 1
            elif self.inside and byte == _BACKSLASH:
                self._escaped = True
                self.length += 1
            elif byte == _QUOTE:
                self.inside = not self.inside
                opened, self.length, self.brackets = self.inside, 0, 0
            elif self.inside:
                self.length += 1
                if byte in _OPENERS:
                    self.brackets += 1
                elif byte in _CLOSERS and self.brackets:
                    self.brackets -= 1
            elif byte in _OPENERS:
                self.depth += 1
            elif byte in _CLOSERS and self.depth:
                self.depth -= 1
                self.complete = self.depth == 0
        return opened


class StringCloser:
    """Picks the closing quote when the model's choice inside a string would end the value."""

    def __init__(
        self,
        piece: Callable[[int], bytes],
        is_end: Callable[[int], bool],
        quote: int,
        token_of: Callable[[bytes], int | None] = lambda text: None,
    ) -> None:
        """`token_of(text)` is the single token spelling `text`, or None (then sentence ends are
        left alone)."""
        self._piece, self._is_end, self._quote = piece, is_end, quote
        # '.' -> the tokens that end the sentence *and* the string ('."', '.",', '."}'), first
        # the one the grammar always allows after a sentence end ('."').
        self._closing: dict[bytes, list[int]] = {}
        for mark in _SENTENCE_ENDS:
            tokens = [token_of(mark + tail) for tail in (b'"', b'",', b'"}')]
            if tokens[0] is not None:
                self._closing[mark] = [t for t in tokens if t is not None]
        self.strings = JsonStrings()
        self.steered = 0  # times the quote was put first (for tests and benchmarks)

    def accept(self, token: int) -> None:
        """Record one generated token."""
        self.strings.feed(self._piece(token))

    def wants_to_close(self, token: int) -> bool:
        """Whether choosing `token` now means the model considers the current string finished."""
        if not self.strings.inside or self.strings.length < 1:
            return False
        if self._is_end(token):
            return True
        ending = _ENDS_VALUE.match(self._piece(token))
        # "[country_name]": a bracket opened inside the string may close inside it.
        return ending is not None and not (self.strings.brackets and ending.group(1) in b"]}")

    def steer(self, logits: Any) -> None:
        """Edit the next position's logits in place: the quote outranks an ending choice, and a
        sentence end that ties with its closing form closes."""
        top = int(logits.argmax())
        if top != self._quote and self.wants_to_close(top):
            logits[self._quote] = logits[top] + 1.0
            self.steered += 1
            return
        closing = self._closing.get(self._piece(top)) if self.strings.inside else None
        if closing and self.strings.length >= 1:
            if max(float(logits[t]) for t in closing) >= float(logits[top]) - SENTENCE_TIE:
                logits[closing[0]] = logits[top] + 1.0
                self.steered += 1
