"""The explorer's computing, importable and tested without Streamlit; pages/ only draw it.

Importing this package sets how long an idle OpenMP thread of torch spins before it sleeps
(libgomp reads GOMP_SPINCOUNT once, when torch loads), so every page and app.py imports it
before anything that loads torch. A page's own tensor work (a Grad-CAM, an overlay, a preview)
is a run of small parallel regions between stretches of Python; after each one libgomp's
default keeps the second thread spinning for 300,000 turns while the page goes on drawing, CPU
the server spends for nothing. With 10,000 turns the models' own latency did not move, while
fewer (1,000, or OMP_WAIT_POLICY=PASSIVE) made a Grad-CAM up to 2x slower (`python
bench/bench_spin.py`). The server CPU of every page, both ways: `python bench/bench_serve.py
--checkpoints DIR` against the same with GOMP_SPINCOUNT=300000 (bench/results/serve-zoo14*.json,
README "Serving a class"). A value set in the environment is kept."""
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import sys  # noqa: E402
import threading  # noqa: E402

_starting = None   # (thread, placeholder) of the first page run in this server, while it imports torch


def _say_starting() -> None:
    """A fresh server's first page run spends seconds importing PyTorch and the zoo before it can
    draw its title; show a line meanwhile, which `started()` (called by ui.page) clears."""
    global _starting
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        if get_script_run_ctx(suppress_warning=True) is None:
            return
        import streamlit as st
        slot = st.empty()
        slot.caption(":material/hourglass_top: Starting up: loading PyTorch and the zoo. The first visit after "
                     "the server starts takes a few seconds.")
        _starting = (threading.get_ident(), slot)
    except Exception:  # noqa: BLE001 -- a startup nicety must never stop a page
        _starting = None


def started() -> None:
    """Clear the start-up line, from the run that drew it."""
    global _starting
    if _starting is not None and _starting[0] == threading.get_ident():
        _starting[1].empty()
        _starting = None


if "streamlit" in sys.modules and "torch" not in sys.modules:
    _say_starting()
