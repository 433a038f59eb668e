"""Transfer Lab's figures: `base` (style, one colour per condition, bands, the projector view) and one module per
experiment, each drawing a run from its JSON. Import the module you draw with: `from tl_core.plots import finetune`."""
