"""Notebooks open unmodified: the contents manager of the student's JupyterLab.

When a kernel starts, JupyterLab writes the kernel's `language_info` (which includes the exact
Python version, e.g. 3.11.7) into the notebook's metadata, and any difference from what the file
holds marks the notebook as modified: a student who only opened it is asked whether to save.
No stored value can match every student's Python (3.11 to 3.13), so the server fills it in as it
serves the notebook: the language_info of its own Python, which is the kernel's (the kernelspec's
`python` is the server's interpreter). The file on disk is not touched.

The student's Jupyter settings (`etc/jupyter-student/`, `hub/jupyter/student/`) make
`StudentContentsManager` the server's contents manager.
"""

from __future__ import annotations

import functools
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

__all__ = ["StudentContentsManager", "kernel_language_info", "with_kernel_language_info"]


@functools.cache
def kernel_language_info() -> dict[str, Any]:
    """What an IPython kernel on this Python reports as its `language_info`."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def with_kernel_language_info(model: dict[str, Any]) -> dict[str, Any]:
    """A contents model of a Python notebook, its `language_info` set to the kernel's own."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return model
    metadata = model["content"].setdefault("metadata", {})
    stored = metadata.get("language_info") or {}
    if stored.get("name", "python") == "python":
        metadata["language_info"] = {**stored, **kernel_language_info()}
    return model


class StudentContentsManager(AsyncLargeFileManager):
    """Jupyter's default contents manager, serving notebooks with the kernel's language_info.

    A contents manager class rather than a patch on the running one: extensions that replace the
    manager (Jupytext derives its own from the configured class) keep this behaviour.
    """

    async def get(self, path: str, content: bool = True, **kwargs: Any) -> dict[str, Any]:
        return with_kernel_language_info(await super().get(path, content=content, **kwargs))
