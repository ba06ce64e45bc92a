"""What builds the side files the pages read beside each checkpoint (retrieval, units, SE
profiles, attention figures, robustness, representations, reliance) and the README's zoo table,
from the shipped weights and the data; `scripts/<name>.py` are their command lines and
`scripts/release_zoo.py` runs them all after a training."""
