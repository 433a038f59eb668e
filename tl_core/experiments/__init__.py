"""Transfer Lab's experiments, one module each, every one declared through `tl_core.contract`.

EXPERIMENTS (name → Experiment) is what the command line loops over; the pages call the same modules.
"""
from tl_core.experiments import domains, finetune, gtl, gtl_sweep, layers, pretrain, selfsup, text, toy, workshop

EXPERIMENTS = {e.name: e for module in (toy, finetune, selfsup, workshop, gtl, gtl_sweep, pretrain, text, layers, domains) for e in module.EXPERIMENTS}

from tl_core import lecture  # noqa: E402 - the lecture's tool: it runs the experiments above, step by step

EXPERIMENTS.update({e.name: e for e in lecture.EXPERIMENTS})
