"""Representations across the zoo, shipped beside each checkpoint: what the Representations page
reads (CKA between layers of any two models, linear probes per layer, a t-SNE map of val). Usage
and code: sidefiles/representations.py."""
import sys

from sidefiles.representations import main

if __name__ == "__main__":
    sys.exit(main())
