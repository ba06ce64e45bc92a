"""Evaluate shipped checkpoints on the whole Imagenette val split and write the card's metrics.
Usage and code: training/evaluation.py."""
import sys

from training.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
