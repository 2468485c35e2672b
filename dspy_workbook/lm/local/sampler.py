"""Samplers the runtime hands to llama-cpp-python: fast greedy under a grammar, and token hooks."""

from __future__ import annotations

import ctypes
import math
from typing import Any

from .hooks import TokenHooks
from .model_file import import_llama_cpp

__all__ = ["HookedSampler", "LazyGrammarSampler"]


def _logits(c: Any, np: Any, ctx: Any, idx: int, n_vocab: int) -> Any:
    """llama.cpp's logits buffer for position `idx`, as a writable numpy view."""
    return np.ctypeslib.as_array(c.llama_get_logits_ith(ctx.ctx, idx), shape=(n_vocab,))


class LazyGrammarSampler:
    """Greedy decoding under a grammar that checks as few tokens as possible against it.

    llama-cpp-python applies the grammar to all 49,152 vocabulary entries before every token:
    ~6-11 ms, as much as the 135M model's own forward pass. Under greedy decoding the answer is the
    allowed token with the highest logit, so the candidates are checked best-first: the top token
    alone (allowed for ~94% of tokens, measured), then the top 64, and only if none of those is
    allowed the whole vocabulary. The tokens chosen are the same as llama-cpp-python's (tested).
    """

    _TOP_K = 64

    def __init__(self, llama: Any, grammar: Any, hooks: TokenHooks | None = None) -> None:
        import numpy as np
        from llama_cpp import _internals

        self._np, self._c = np, import_llama_cpp()
        self._n_vocab = llama.n_vocab()
        self._hooks = hooks
        self._grammar = _internals.LlamaSampler()  # a chain holding just the grammar
        self._grammar.add_grammar(llama._model, grammar)
        self._top = (self._c.llama_token_data * self._TOP_K)()
        self._top_view = np.ctypeslib.as_array(self._top)
        self._all: Any = None  # the whole-vocabulary array, allocated the first time it is needed

    def _allowed(self, ids: Any, logits: Any, data: Any, view: Any) -> Any:
        """Grammar-filtered logits for candidates `ids` (disallowed ones become -inf)."""
        size = len(ids)
        view["id"][:size], view["logit"][:size], view["p"][:size] = ids, logits[ids], 0.0
        array = self._c.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._c.llama_sampler_apply(self._grammar.sampler, ctypes.byref(array))
        return view["logit"][:size]

    def _choose(self, logits: Any) -> int:
        np = self._np
        best = int(np.argmax(logits))  # llama.cpp's greedy choice: the first maximum
        if not math.isinf(self._allowed(np.array([best]), logits, self._top, self._top_view)[0]):
            return best
        # Best-first: logit descending, then token id ascending (the order greedy breaks ties in).
        top = np.argpartition(logits, -self._TOP_K)[-self._TOP_K :]
        top = top[np.lexsort((top, -logits[top]))]
        filtered = self._allowed(top, logits, self._top, self._top_view)
        allowed = np.flatnonzero(~np.isinf(filtered))
        # Valid unless the winner ties with the cut-off, where a token outside the 64 could tie too.
        if allowed.size and logits[top[allowed[0]]] > logits[top[-1]]:
            return int(top[allowed[0]])
        if self._all is None:
            self._all = (self._c.llama_token_data * self._n_vocab)()
            self._all_view = np.ctypeslib.as_array(self._all)
            self._ids = np.arange(self._n_vocab, dtype=np.int32)
        filtered = self._allowed(self._ids, logits, self._all, self._all_view)
        choice = int(np.argmax(filtered))
        if math.isinf(filtered[choice]):
            raise RuntimeError("the JSON grammar allows no next token")
        return choice

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """The grammar-allowed token with the highest logit (llama-cpp-python's sampler API)."""
        logits = _logits(self._c, self._np, ctx, idx, self._n_vocab)
        if self._hooks is not None:
            self._hooks.before_sample(logits)
        token = self._choose(logits)
        self._grammar.accept(token)
        return token


class HookedSampler:
    """llama-cpp-python's own sampler chain, with the call's token hooks run on the logits first."""

    def __init__(self, inner: Any, llama: Any, hooks: TokenHooks) -> None:
        import numpy as np

        self._inner, self._hooks = inner, hooks
        self._np, self._c, self._n_vocab = np, import_llama_cpp(), llama.n_vocab()

    def sample(self, ctx: Any, idx: int = -1) -> int:
        self._hooks.before_sample(_logits(self._c, self._np, ctx, idx, self._n_vocab))
        return self._inner.sample(ctx, idx)
