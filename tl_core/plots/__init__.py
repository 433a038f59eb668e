"""Transfer Lab's figures: `base` (style, colours, bands) and one module per experiment."""
from tl_core.plots._old import *  # noqa: F401,F403 - pages not yet moved to their own module (temporary)
