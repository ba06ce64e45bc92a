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
