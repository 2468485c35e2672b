"""`tools/answer_key.py`: the master's solution cells, loaded without the demo cells around them."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from pathlib import Path

import jupytext
import pytest

from tools import build
from tools.answer_key import blank_solutions, load_solutions

# A master whose every non-solution statement would fail loudly if it ran.
FIXTURE_MASTER = '''\
# %% [markdown]
# # A fixture master

# %%
import json

raise RuntimeError("the setup cell ran (only its import may)")

# %%
import math
from pathlib import Path

# %%
def helper(x: float) -> float:
    """A plain-cell helper the solution uses."""
    return math.sqrt(x)


DEMO = Path("/nonexistent").read_text()  # a demo statement next to the helper

# %% nbgrader={"solution": true, "grade_id": "area"}
def area(r: float) -> float:
    """The area of a circle."""
    ### BEGIN SOLUTION
    return math.pi * helper(r) ** 4
    ### END SOLUTION

# %%
raise RuntimeError("a demo cell ran")

# %% nbgrader={"grade": true, "grade_id": "test_area", "points": 1}
raise AssertionError("a graded test cell ran")

# %% nbgrader={"solution": true, "grade_id": "dump"}
def dump(value) -> str:
    ### BEGIN SOLUTION
    return json.dumps(value, sort_keys=True)
    ### END SOLUTION
'''


@pytest.fixture()
def masters(tmp_path: Path) -> Path:
    (tmp_path / "01_fixture.py").write_text(FIXTURE_MASTER)
    return tmp_path


def test_loads_a_known_solution_from_the_real_master() -> None:
    key = load_solutions("02_async", "token_bucket")
    bucket = key.TokenBucket(rate=1000, burst=2)
    asyncio.run(asyncio.wait_for(bucket.acquire(), 5))
    assert bucket.tokens < 2
    assert not hasattr(key, "run_bounded"), "a solution that was not asked for was loaded"
    for demo_name in ("lm", "qa", "LATENCY", "remote_lm"):  # set by the notebook's setup cells
        assert not hasattr(key, demo_name), f"{demo_name} is defined: a demo statement ran"
    assert (
        key.asyncio is asyncio and key.wb.__name__ == "dspy_workbook"
    )  # the imports of every cell


def test_every_solution_cell_of_every_master_loads() -> None:
    for master in build.masters():
        cells = jupytext.read(master, fmt="py:percent").cells
        ids = [
            c.metadata["nbgrader"]["grade_id"]
            for c in cells
            if c.metadata.get("nbgrader", {}).get("solution")
        ]
        # Solutions may build on classes the notebook gives (e.g. a subclass of `NotesQA`).
        given = [
            node.name
            for c in cells
            if c.cell_type == "code" and not c.metadata.get("nbgrader")
            for node in ast.parse(c.source).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        wanted: list[str] = []
        while True:  # add the given definitions a solution needs, one NameError at a time
            try:
                load_solutions(master.stem, *ids, definitions=wanted)
                break
            except NameError as exc:
                assert exc.name in given and exc.name not in wanted, f"{master.name}: {exc}"
                wanted.append(exc.name)


def test_an_unknown_grade_id_is_refused_with_the_ids_that_exist() -> None:
    with pytest.raises(LookupError) as refused:
        load_solutions("02_async", "token_bucket", "tokenbucket")
    message = str(refused.value)
    assert "'tokenbucket'" in message and "02_async.py" in message
    for known in (
        "run_bounded",
        "token_bucket",
        "timeout",
        "as_completed",
        "stream_answer",
    ):
        assert known in message
    with pytest.raises(
        LookupError, match="'test_token_bucket'"
    ):  # a graded test cell is not a solution
        load_solutions("02_async", "test_token_bucket")


def test_demo_and_test_cells_never_run(masters: Path) -> None:
    key = load_solutions("01_fixture", "area", "dump", definitions=["helper"], masters_dir=masters)
    assert key.area(1.0) == pytest.approx(3.141592653589793)
    assert (
        key.dump({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    )  # `import json` came from the mixed setup cell
    assert not hasattr(key, "DEMO")


def test_only_the_named_pieces_are_defined(masters: Path) -> None:
    key = load_solutions("01_fixture", "dump", masters_dir=masters)
    assert not hasattr(key, "area") and not hasattr(key, "helper")
    with pytest.raises(NameError, match="helper"):  # a helper is only there when named
        load_solutions("01_fixture", "area", masters_dir=masters).area(1.0)


def test_an_unknown_definition_or_master_is_refused(masters: Path) -> None:
    with pytest.raises(
        LookupError, match=r"'DEMO'.*it has: helper"
    ):  # an assignment is not a definition
        load_solutions("01_fixture", definitions=["DEMO"], masters_dir=masters)
    with pytest.raises(LookupError, match=r"'nope'.*it has: area, dump"):
        load_solutions("01_fixture", "nope", masters_dir=masters)
    with pytest.raises(FileNotFoundError, match="99_missing"):
        load_solutions("99_missing", masters_dir=masters)


def test_blank_gives_the_release_stubs(masters: Path) -> None:
    key = load_solutions(
        "01_fixture", "area", "dump", definitions=["helper"], blank=True, masters_dir=masters
    )
    with pytest.raises(NotImplementedError):
        key.area(1.0)
    assert key.helper(4.0) == 2.0  # plain cells have no solution regions to clear


def test_loaded_code_keeps_its_source_for_tracebacks_and_inspect(masters: Path) -> None:
    key = load_solutions("01_fixture", "area", definitions=["helper"], masters_dir=masters)
    assert "### BEGIN SOLUTION" in inspect.getsource(key.area)
    assert inspect.getsourcefile(key.area) == "<01_fixture.py code cell 3: area>"
    with pytest.raises(ValueError) as failed:
        key.area(-1.0)
    assert "helper(r)" in "".join(failed.traceback[-2].statement.lines)


def test_blank_stub_helper_matches_nbgrader_shape() -> None:
    source = textwrap.dedent("""\
        def f():
            x = 1
            ### BEGIN SOLUTION
            return x
            ### END SOLUTION
        """)
    assert (
        blank_solutions(source)
        == "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )
