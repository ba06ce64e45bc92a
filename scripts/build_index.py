"""Build the offline retrieval gallery and, per shipped checkpoint, its feature index. Usage and
code: sidefiles/retrieval.py."""
import sys

from sidefiles.retrieval import main

if __name__ == "__main__":
    sys.exit(main())
