"""`python -m gnuradio.shapft.cli COMMAND ...`: the same as the `shapft` tool."""
import sys

from . import main

if __name__ == "__main__":   # not when a worker process (multiprocessing spawn) imports it
    sys.exit(main())
