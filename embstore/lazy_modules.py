"""Heavy modules imported when first used, not when embstore is imported.

A one-shot exact query (`embstore nearest king`) never touches FAISS: the rows are a
memory map searched with numpy's BLAS. Importing FAISS costs 50-100 ms of such a
query, so modules that need it bind ``faiss`` to a lazily loaded module instead.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, loaded on first attribute access (``importlib.util.LazyLoader``)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


faiss = lazy_module("faiss")
