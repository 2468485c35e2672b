"""Measure one GGUF model in a fresh process: load time, RSS, answer speed and the answers.

Run as a script (never imported by the package), so the process holds nothing but llama.cpp and
the figures are the model's own: `python _probe_script.py < request.json > result.json`.

The request: {"model": path, "threads": int, "n_ctx": int, "max_tokens": int, "ram_cache": bool,
"extra_buffer_types": bool, "calls": [{"system": str, "user": str}, ...]}.
The result: {"load_s", "rss_idle", "rss_loaded", "rss_after", "seconds": [per call],
"prompt_tokens": [...], "completion_tokens": [...], "answers": [...]} or {"error": "..."}.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

import psutil


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _buffer_switch():
    """The workbook runtime's switch for llama.cpp's extra buffer types (AMX, repacked weights),
    loaded by path: importing the package would load DSPy into this bare process."""
    path = Path(__file__).resolve().parents[1] / "lm" / "local" / "buffers.py"
    spec = importlib.util.spec_from_file_location("_workbook_buffers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.extra_buffer_types


def main() -> int:
    request = json.load(sys.stdin)
    rss_idle = _rss()
    try:
        import llama_cpp

        start = time.perf_counter()
        with _buffer_switch()(request.get("extra_buffer_types", True)):
            llama = llama_cpp.Llama(
                model_path=request["model"],
                n_ctx=request.get("n_ctx", 2048),
                n_threads=request["threads"],
                n_threads_batch=request["threads"],
                verbose=False,
            )
        load_s = time.perf_counter() - start
    except Exception as exc:  # a file llama.cpp cannot load: report it, don't crash the caller
        json.dump({"error": f"{type(exc).__name__}: {exc}"}, sys.stdout)
        return 0
    if request.get("ram_cache"):
        llama.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=512 * 1024 * 1024))
    rss_loaded = _rss()
    result = {
        "load_s": load_s,
        "rss_idle": rss_idle,
        "rss_loaded": rss_loaded,
        "seconds": [],
        "prompt_tokens": [],
        "completion_tokens": [],
        "answers": [],
    }
    for call in request["calls"]:
        messages = [
            {"role": "system", "content": call["system"]},
            {"role": "user", "content": call["user"]},
        ]
        start = time.perf_counter()
        out = llama.create_chat_completion(
            messages=messages, temperature=0.0, max_tokens=request.get("max_tokens", 32)
        )
        result["seconds"].append(time.perf_counter() - start)
        result["prompt_tokens"].append(out["usage"]["prompt_tokens"])
        result["completion_tokens"].append(out["usage"]["completion_tokens"])
        result["answers"].append(out["choices"][0]["message"]["content"].strip())
    result["rss_after"] = _rss()
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
