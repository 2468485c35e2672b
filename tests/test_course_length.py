"""The chapter fits its time: each exercise's core path, counted on its master, stays within the
limits (`tools/course_length.py` prints the figures; `make length` too)."""

from __future__ import annotations

from tools import course_length as cl


def test_each_exercise_core_fits() -> None:
    lengths = cl.exercises(cl.measure_all())
    assert len(lengths) == 6, [n.name for n in lengths]
    over = [f"{n.name}: {n.minutes:.0f} min" for n in lengths if n.minutes > cl.LIMIT_PER_NOTEBOOK]
    assert not over, f"over {cl.LIMIT_PER_NOTEBOOK} min by the method:\n{cl.report(lengths)}"


def test_six_exercises_fit_the_chapter() -> None:
    lengths = cl.exercises(cl.measure_all())
    total = sum(n.minutes for n in lengths)
    assert total <= cl.LIMIT_ALL, f"{total:.0f} min > {cl.LIMIT_ALL}:\n{cl.report(lengths)}"


def test_counting_follows_the_method(tmp_path) -> None:
    """The counter counts what the method says, on a small master written here."""
    master = tmp_path / "09_probe.py"
    master.write_text(
        "# %% [markdown]\n# one two three four\n\n"
        "# %%\n# five six\nx = 1\n\ny = 2  # seven\n\n"
        '# %% nbgrader={"solution": true, "grade_id": "f"}\n'
        "def f():\n    ### BEGIN SOLUTION\n    a = (1 +\n         2)\n    return a\n"
        "    ### END SOLUTION\n\n"
        '# %% nbgrader={"grade": true, "grade_id": "t", "points": 2}\n'
        "assert f() == 3\n### BEGIN HIDDEN TESTS\nassert f() != 4\nassert True\n"
        "### END HIDDEN TESTS\n\n"
        "# %% [markdown]\n# ## Going further\n# many words here that do not count at all\n\n"
        "# %%\nz = 3\n"
    )
    n = cl.measure(master)
    assert (n.words, n.tasks, n.points, n.lines_to_write) == (7, 1, 2, 2), n
    # x = 1, y = 2, def f():, assert f() == 3
    assert n.given_lines == 4, n
    assert abs(n.minutes - (7 / 200 + 4 / 20 + 4 + 2)) < 1e-9
