"""Write the README's zoo table from the registry and the checkpoint cards (never typed). Usage and
code: sidefiles/zoo_table.py."""
import sys

from sidefiles.zoo_table import main

if __name__ == "__main__":
    sys.exit(main())
