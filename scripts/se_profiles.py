"""Class-average Squeeze-and-Excitation gates over the val split, shipped beside the checkpoint.
Usage and code: sidefiles/se_profiles.py."""
import sys

from sidefiles.se_profiles import main

if __name__ == "__main__":
    sys.exit(main())
