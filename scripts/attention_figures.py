"""The ViT paper's Figure 7 on our own checkpoints, shipped beside each of them. Usage and code:
sidefiles/attention.py."""
import sys

from sidefiles.attention import main

if __name__ == "__main__":
    sys.exit(main())
