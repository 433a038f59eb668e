import sys

from tl_core.cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # output piped into `head` and cut short: not an error of the experiment
    sys.exit(0)
