"""How the zoo is trained: what `scripts/train.py` is made of (config and recipes, data on the
training device, steps, schedule, run state, export, evaluation), importable by the other
scripts and the tests. The app never imports it."""
