"""`python -m gnuradio.shapft.cli COMMAND ...`: the same as the `shapft` tool."""
import sys

from . import main

sys.exit(main())
