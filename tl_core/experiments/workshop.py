"""The state-dict workshop's command-line twins: `inspect FILE` and `load FILE --into ARCH`.

    python -m tl_core inspect enc.pt --json
    python -m tl_core load enc.pt --into ssl_downstream_expression --add-prefix encoder. --no-strict --json

Tools, not experiments: nothing trains and nothing is recorded. `load`'s flags are `state.LoadConfig`'s
declared settings (the page's widgets have the same ranges and choices). Continuing to fine-tune loaded
weights is the fine-tuning lab's run (`finetune.run(..., init=)`), which the page offers.
"""
from __future__ import annotations

import json

from tl_core import contract, state
from tl_core.i18n import tr


def _inspect(args) -> int:
    f = state.read_path(args.file)
    result = state.inspect(f.state, f.name, notes=f.notes)
    out = dict(result.to_json(), format=f.format)
    if args.json:
        print(json.dumps(out))
        return 0
    for note in f.notes:
        print(tr("note: {note}", note=note))
    for r in out["keys"]:
        print(f"  {r['key']:<50} {str(tuple(r['shape'])):<20} {r['dtype']:<9} {r['elements']:>10,}")
    for g in out["groups"]:
        print(f"  {g['module']:<30} {g['elements']:>12,} values in {g['keys']} tensors")
    print(f"{out['n_keys']} tensors, {out['total_elements']:,} values, {out['total_mb']:.2f} MB")
    return 0


def _load(args) -> int:
    """Exit 0 when the weights loaded (strict: all matched; strict off: what matched), 1 when strict
    loading failed (the report says why), 2 for a file or option that cannot be used at all."""
    if "arch" not in contract.given(args, state.LoadConfig):
        raise ValueError(tr("say which architecture to load into: --into ARCH (one of {choices})",
                            choices=", ".join(contract.spec(state.LoadConfig, "arch").choices)))
    cfg = contract.from_args(state.LoadConfig, args)
    contract.validate(cfg)           # before reading a file that may be large
    f = state.read_path(args.file)
    report = state.load_into(f.state, cfg, f.name, f.notes)
    out = report.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        print(out["message"])
        for title, items in (("missing", report.missing), ("unexpected", report.unexpected),
                             ("shape-mismatched", [f"{m['key']} file {tuple(m['file_shape'])} model "
                                                   f"{tuple(m['model_shape'])}" for m in report.mismatched])):
            print(f"{title} ({len(items)}):" + "".join(f"\n  {k}" for k in items[:40])
                  + (f"\n  … and {len(items) - 40} more" if len(items) > 40 else ""))
        for hint in report.hints:
            print(tr("hint: {hint}", hint=hint))
    return 0 if report.ok else 1


EXPERIMENTS = (
    contract.Experiment(
        "inspect", "keys, shapes, dtypes and sizes of a .pt/.pth/.safetensors state_dict", main=_inspect,
        recorded=False, device=False,
        options=(contract.Option("file", "a state_dict file (read safely: tensors only, no pickled code)"),)),
    contract.Experiment(
        "load", "load a state_dict into an architecture: missing / unexpected / mismatched", state.LoadConfig,
        main=_load, recorded=False, device=False,
        options=(contract.Option("file", "a .pt/.pth/.safetensors state_dict"),)),
)
