"""What each shipped model's deeper units respond to, shipped beside each checkpoint. Usage and
code: sidefiles/units.py."""
import sys

from sidefiles.units import main

if __name__ == "__main__":
    sys.exit(main())
