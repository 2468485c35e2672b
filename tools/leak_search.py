"""Find the masters' answers in files students receive, even short and renamed ones.

Every solution block and hidden test of every master becomes a stream of normalised tokens:
literals become `L`, and in solution blocks variable names become `N`, while keywords, operators
and the names after a dot (`.compare_digest`, `.monotonic`: the API an answer calls) stay. Comments
and docstrings are dropped. A file leaks a block when its own stream holds a contiguous run of the
block's tokens as long as the whole block (blocks shorter than `WINDOW` tokens) or `WINDOW` tokens
(longer blocks). So a four-line answer with its variables renamed is found, while a hint that
quotes an answer in prose (a string literal) is not: hint levels end close to the answer by design.

    python tools/leak_search.py dist/unpacked/   # every leak, one line each; exit 1 if any
"""

from __future__ import annotations

import io
import keyword
import re
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "source" / "ch07"
BLOCK = re.compile(r"^[ \t]*### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)^[ \t]*### END \1", re.S | re.M)
MIN_TOKENS = 14  # below this a block is one idiom (`return sorted(items)`), not an answer
WINDOW = 40  # a run this long of a longer block's tokens is a copy of it
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


@dataclass(frozen=True)
class Block:
    where: str
    tokens: tuple[str, ...]
    names: bool  # whether variable names were abstracted (solutions) or kept (hidden tests)


def normalise(code: str, *, names: bool = True) -> tuple[str, ...]:
    """`code`'s tokens with literals (and, with `names`, variable names) abstracted."""
    import textwrap

    out: list[str] = []
    previous, line_start = "", True
    try:
        for tok in tokenize.generate_tokens(io.StringIO(textwrap.dedent(code)).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                line_start = True
                continue
            if tok.type in _SKIP or tok.type == tokenize.ENDMARKER:
                continue
            if tok.type == tokenize.STRING and line_start:
                continue  # a docstring or a lone string: prose, not code
            line_start = False
            if tok.type in (tokenize.STRING, tokenize.NUMBER):
                text = "L"
            elif tok.type == tokenize.NAME:
                keep = not names or keyword.iskeyword(tok.string) or previous == "."
                text = tok.string if keep else "N"
            else:
                text = tok.string
            out.append(text)
            previous = text
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return ()
    return tuple(out)


def secret_blocks(masters: Iterable[Path] | None = None) -> list[Block]:
    """Every solution block and hidden test of every master, normalised."""
    paths = sorted(MASTERS.glob("[0-9][0-9]_*.py")) if masters is None else list(masters)
    blocks = []
    for master in paths:
        for index, (kind, body) in enumerate(BLOCK.findall(master.read_text())):
            # A renamed answer is still the answer; a hidden test is only a copy with its names
            # (test data is built the same way everywhere, so abstracted it matches anything).
            names = kind == "SOLUTION"
            tokens = normalise(body, names=names)
            if len(tokens) >= MIN_TOKENS:
                where = f"{master.name} {kind.lower()} block {index}"
                blocks.append(Block(where, tokens, names))
    return blocks


def _windows(tokens: tuple[str, ...], width: int) -> set[tuple[str, ...]]:
    return {tokens[i : i + width] for i in range(len(tokens) - width + 1)}


def leaks(files: Iterable[Path], base: Path, blocks: list[Block] | None = None) -> list[str]:
    """One line per (file, block) where the file holds the block (see the module docstring),
    and per file that carries an nbgrader solution or hidden-test marker."""
    blocks = secret_blocks() if blocks is None else blocks
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            if marker in text:
                found.append(f"{path.relative_to(base)}: {marker}")
        if path.suffix != ".py":
            continue
        streams = {True: normalise(text), False: normalise(text, names=False)}
        by_width: dict[tuple[bool, int], set[tuple[str, ...]]] = {}
        for block in blocks:
            width = min(len(block.tokens), WINDOW)
            key = (block.names, width)
            if key not in by_width:
                by_width[key] = _windows(streams[block.names], width)
            seen = by_width[key]
            hit = next((w for w in _windows(block.tokens, width) if w in seen), None)
            if hit is not None:
                found.append(
                    f"{path.relative_to(base)} holds {block.where}: {' '.join(hit)[:80]!r}"
                )
    return found


def main(argv: list[str]) -> int:
    base = Path(argv[0]) if argv else ROOT / "dist"
    files = sorted(p for p in base.rglob("*") if p.is_file())
    found = leaks(files, base)
    print("\n".join(found) or f"no answer found in {len(files)} files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
