# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 7 · Advanced Topics — start here
#
# This workbook turns six production concerns of a DSPy program into exercises you can run,
# measure and check on your own laptop: **caching, async, debugging, performance, deployment and
# monitoring**. Every exercise uses a *real* language model, and by default that model runs
# inside this notebook's process — no API key, no network, no bill.
#
# Run this notebook top to bottom (▶▶ or *Run → Run All Cells*). It checks your environment,
# makes a first DSPy call, and shows how the rest of the workbook works.

# %% [markdown]
# ## 1 · The first cell of every notebook
#
# Each notebook starts with the same two lines. `wb.setup()` builds the course language model,
# hands it to DSPy with `dspy.configure`, and says which one is active. Which model it builds is
# decided by **one setting**, the environment variable `WORKBOOK_LM`:
#
# | `WORKBOOK_LM` | what you get | why you would use it |
# |---|---|---|
# | *unset* or `local` | SmolLM2-135M-Instruct, running in-process with llama.cpp | the default: offline, free, real tokens |
# | `sim` | a simulated remote provider: fixed latency, faults, rate limits | what the autograder uses; makes network effects visible |
# | a LiteLLM id, e.g. `openai/gpt-4o-mini` | a hosted model, with your key | better answers; everything else stays the same |

# %%
import dspy_workbook as wb

lm = wb.setup()

# %% [markdown]
# ## 2 · Environment check
#
# The workbook pins every package version (see `requirements.txt`), because course material
# that breaks when a library moves is the most common complaint about course repositories. The
# table shows the pinned version next to the one installed in this kernel; a ❌ means your
# environment drifted: run `make -B setup` in the workbook folder (it reinstalls the pins), then
# restart the kernel. Python 3.11, 3.12 and 3.13 are all supported.

# %% tags=["nbval-ignore-output"]
from dspy_workbook.environment import environment_table

environment_table()

# %% [markdown]
# ## 3 · A first DSPy call, timed
#
# `dspy.Predict` turns a *signature* (`"question -> answer"`) into a prompt, calls the LM, and
# parses the reply into fields. The local model has 135 million parameters: its answers are
# short and often wrong for anything beyond simple facts. That is fine here — this course is about
# the *mechanics* around the model (caching, concurrency, tracing, serving, monitoring), and those
# behave exactly as they would with a large hosted model.
#
# Why is every answer parseable even though a tiny model ignores formatting instructions? The
# local engine constrains decoding to the JSON schema of the signature's output fields, so the
# model *cannot* produce anything DSPy's `JSONAdapter` fails to parse.

# %% tags=["nbval-ignore-output"]
import time

import dspy

qa = dspy.Predict("question -> answer")
start = time.perf_counter()
prediction = qa(question="What is the capital of France?")
elapsed = time.perf_counter() - start
print(f"answer: {prediction.answer!r}")
print(f"latency: {elapsed:.2f} s")

# %% [markdown]
# DSPy records every LM call in `lm.history`, including the token usage the engine reported.
# We check the *shape* here (the exact words depend on your CPU, so they are not checked):

# %%
last = lm.history[-1]
print(
    "fields in a history entry:",
    sorted(k for k in ("prompt", "messages", "outputs", "usage") if k in last),
)
print("tokens were counted:", last["usage"].get("total_tokens", 0) > 0)
print(
    "the answer is a non-empty string:",
    isinstance(prediction.answer, str) and bool(prediction.answer.strip()),
)

# %% [markdown]
# ## 4 · How the workbook is organised
#
# Six exercises, each with a **core path** of the times below, reading included (about 3 hours
# in all, plus the questionnaires). Each one also has optional **going further** parts — the
# seed's advanced challenges among them — for when you want depth: they carry no points, so the
# core tasks are the full grade.
#
# | notebook | you will build | you will measure | core path |
# |---|---|---|---|---|
# | `01_caching.ipynb` | a cache key that changes with the answer, a disk cache with expiry, a cached DSPy module | hit rate, with vs without the cache, DSPy's own cache | ~25 min |
# | `02_async.ipynb` | concurrent DSPy calls with a limit that keeps every result, a token-bucket rate limiter | throughput at concurrency 1–20, a provider's rate limits | ~25 min |
# | `03_debugging.ipynb` | a span tracer on DSPy callbacks, secret redaction for logs, a bottleneck finder | where the time goes, on a timeline | ~30 min |
# | `04_optimization.ipynb` | a profiler for time and memory, a faster program found from a real profile | naive vs optimised on one workload | ~25 min |
# | `05_deployment.ipynb` | request validation, API keys and per-key rate limits for a FastAPI service | your own server over HTTP: status codes, latency, metrics | ~25 min |
# | `06_monitoring.ipynb` | a metrics collector on DSPy callbacks, an adaptive anomaly detector | latency, quality, cost and alerts on a dashboard | ~25 min |
#
# That is about 2 hours 35 minutes of core work, reading included; the questionnaires and a look
# at the going-further parts fill the rest of the chapter's 3–4 hours.
#
# Each exercise follows the same rhythm:
#
# 1. **Read** why the technique exists and what goes wrong without it.
# 2. **Fill in** a cell marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`).
# 3. **Self-check**: the next cell calls a one-line check that tells you at once what is right or
#    wrong ("2 hits expected, got 3"). Self-checks never stop the notebook, and they give up on
#    code that does not finish within 30 seconds instead of hanging.
# 4. **Stuck?** `exN.hint("Task 2")` (or the key named beside the task) shows a hint; call it
#    again for the next, more specific one. Hints go from a nudge to a near-answer: the last level
#    of a task shows most of the code, so ask for one level at a time.
# 5. **Tests**: a locked cell of `assert`s. The ones you can see are the ones you can debug
#    against; the instructor's copy has more (hidden) tests of the same behaviours — every
#    behaviour they test is stated in the task's text and covered by its self-check.
# 6. **At the end**, `exN.check_all()` re-runs every self-check on your current code and shows a
#    table of verdicts and points, core and optional apart.
#
# **Run All stops at the first unfinished task**: its locked test cell raises (your stub still
# says `NotImplementedError`), and Jupyter stops there, once. That is expected while you work:
# finish that task, or run the cells below it one by one. Going-further parts never stop Run All:
# left undone, they say so in one line, and the notebook runs on to `check_all()`.

# %% [markdown]
# ## 5 · What a self-check looks like
#
# Here is a toy task with its check, so you can see the four possible verdicts: ✅ correct,
# ❌ incorrect (with what your code produced), 💡 not attempted (the starter is untouched), and
# 💥 error (your code raised an exception).

# %%
from IPython.display import display

from dspy_workbook.checks import check, expect


@check("Toy task · count the vowels")
def check_count_vowels(count_vowels) -> str:
    got = count_vowels("DSPy is declarative")
    expect(got is not None, "`count_vowels` returned None — did you forget `return`?")
    expect(got == 6, f"`count_vowels('DSPy is declarative')` returned {got!r}; count a, e, i, o, u")
    return "6 vowels, as expected."


def count_vowels_unfinished(text: str) -> int:
    raise NotImplementedError()


def count_vowels_buggy(text: str) -> int:
    return sum(ch in "aeiou" for ch in text.split()[0])


def count_vowels_crashing(text: str) -> int:
    return len([ch for ch in text if ch in "aeiou"]) + text  # adds a str to an int: TypeError


def count_vowels(text: str) -> int:
    return sum(ch in "aeiou" for ch in text.lower())


for candidate in (count_vowels_unfinished, count_vowels_buggy, count_vowels_crashing, count_vowels):
    display(check_count_vowels(candidate))

# %% [markdown]
# ## 6 · Switching to a hosted model
#
# Stop JupyterLab, then start it again with the model's LiteLLM id and your key in the
# environment — nothing in the notebooks changes:
#
# ```bash
# export OPENAI_API_KEY=sk-...            # never paste keys into a notebook
# WORKBOOK_LM=openai/gpt-4o-mini make lab
# ```
#
# A missing key is reported in one clear line when `wb.setup()` runs, before any call is made:

# %%
import os

saved_key = os.environ.pop("OPENAI_API_KEY", None)
try:
    wb.course_lm("openai/gpt-4o-mini")
except wb.BackendError as error:
    print(f"BackendError: {error}")
finally:
    if saved_key is not None:
        os.environ["OPENAI_API_KEY"] = saved_key

# %% [markdown]
# ## 7 · Submitting your work
#
# Every exercise ends with the same four steps: save; *Kernel → Restart Kernel and Run All
# Cells…* (it must reach `check_all()`); press **Validate** in the notebook's toolbar, which runs
# the notebook the way the grader does; then hand it in — on the course JupyterHub with
# **Nbgrader → Assignment List** → **Submit**, on your own machine by uploading the `.ipynb` file
# where your instructor asked.
#
# ## 8 · For instructors: grading
#
# The masters live in `source/ch07/NN_name.py` (readable text, with solutions and hidden tests);
# everything a student sees is generated from them. From the repository folder, in a plain shell:
#
# ```bash
# make release        # regenerate release/, notebooks/ and solutions/ from the masters
# make grade          # autograde every submission in submitted/<student>/ch07/
# make feedback       # one HTML feedback page per student and notebook, in feedback/
# make grades.csv     # every student's scores, as CSV
# make instructor-lab # JupyterLab with nbgrader's Formgrader and Create Assignment
# ```
#
# Grading runs on the simulated provider (chosen in `nbgrader_config.py`, for the grading kernels
# only), so it is fast, needs no key and gives the same score every time. A cell that runs longer
# than 120 s is stopped and scored as failed, so one hanging submission cannot stall a grading run.
#
# Next: open **`01_caching.ipynb`**.
