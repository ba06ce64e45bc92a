"""What each shipped network relies on, beside each checkpoint: what the Reliance page draws for
the whole zoo (patch shuffling and dropping, FGSM and PGD, Fourier noise, effective receptive
fields; `explorer.reliance_zoo` says on which images and with which settings). Usage and code:
sidefiles/reliance.py."""
import sys

from sidefiles.reliance import main

if __name__ == "__main__":
    sys.exit(main())
