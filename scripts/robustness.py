"""How each shipped model fails: val top-1 under common corruptions, shipped as a small table.
Usage and code: sidefiles/robustness.py."""
import sys

from sidefiles.robustness import main

if __name__ == "__main__":
    sys.exit(main())
