"""Lists of recorded runs as people see them: each run's headline metric, the settings that differ between runs,
which runs a session may see, the values to filter by, and the list as CSV or JSON.

The Runs page and `python -m tl_core runs` show the history through these; each run is the history's record
(`tl_core.store.Run`, not imported here: the store offers these functions where it always did).
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace

FILTER_FIELDS = ("dataset", "backbone")

# runs recorded before results named their headline: the metric each kind showed then
EARLIER_HEADLINES = {"toy": "test_mse_ratio", "finetune": "val_acc", "own": "val_acc", "gtl": "guided.val_acc_mean",
                     "ssl": "ssl_finetuned.val_acc"}


def headline(run) -> str:
    """The run's headline metric as text, e.g. "val_acc 64.0%"; the result named which metric it is."""
    name = run.headline or EARLIER_HEADLINES.get(run.kind, "")
    if name not in run.metrics:
        return ""
    value = run.metrics[name]
    return f"{name} {value:.1%}" if "acc" in name else f"{name} {value:.3g}"


def flat_config(config: dict, prefix: str = "") -> dict:
    """Nested config → {"a.b": value}, with lists and tuples written as comma-separated text."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = value
    return out


def what_changed(runs: list) -> dict[str, list]:
    """Only the config fields (and the kind) whose values differ between the runs: field → values."""
    if len(runs) < 2:
        return {}
    flats = [{"kind": r.kind, **flat_config(r.config)} for r in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return {k: [f.get(k) for f in flats] for k in keys
            if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1}


# what a run measures, beyond its kind: runs that differ in one of these answer different questions (a lab run of
# EfficientNet, pretrained and scratch, is not a lecture step's shapes CNN from scratch)
MEASURES = ("backbone", "weights", "conditions", "methods", "modality", "strategies", "sources")


def family(run) -> tuple:
    """What makes two runs comparable: the same experiment, headline, curves and measured settings (`MEASURES`)."""
    return (run.kind, run.headline, tuple(sorted(run.curves)),
            tuple(json.dumps(run.config.get(k), sort_keys=True) for k in MEASURES))


def comparable(runs: list, most: int = 2) -> list:
    """The runs a comparison starts from: the newest finished run with curves and the newest of its family."""
    done = [r for r in runs if r.status == "finished" and r.curves]
    return [r for r in done if family(r) == family(done[0])][:most] if done else []


def unlike(runs: list) -> str:
    """"" when the runs can share a chart and a table; else one line saying why not (other experiments, or the
    same experiment measuring other things: which settings differ)."""
    kinds = list(dict.fromkeys(r.kind for r in runs))
    if len(kinds) > 1:
        return (f"These runs are of different experiments ({', '.join(kinds)}): their numbers measure different "
                f"things, so they are not drawn on one chart. Pick runs of one experiment (the Experiment filter "
                f"in the sidebar lists them).")
    differ = [k for k in MEASURES if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1]
    if differ or len({family(r) for r in runs}) > 1:
        what = ", ".join(differ) or "their conditions"
        return (f"These runs measure different things ({what} differ): a curve or metric of the same name is "
                f"another condition in each, so only the runs that have it are drawn.")
    return ""


def visible(runs: list, session: str, shared: bool, admin: bool = False) -> list:
    """The runs one session may see. On one user's machine (not shared) or for the teacher: all of them. On a
    shared server: every run of the built-in experiments, but another session's runs on its own uploads are
    left out and its labels are not shown (they are its notes)."""
    if not shared or admin:
        return runs
    out = []
    for r in runs:
        if r.session == session:
            out.append(r)
        elif not r.private:
            out.append(replace(r, label=""))
    return out


def config_values(runs: list, field_name: str) -> list[str]:
    """The distinct values of a config field over these runs (for filters)."""
    return sorted({str(r.config[field_name]) for r in runs if r.config.get(field_name) is not None})


CSV_BASE = ["run_id", "label", "kind", "status", "device", "seconds", "created", "epoch"]


def to_csv(runs: list) -> str:
    """One row per run and epoch: the run's columns, its config (config.*), final metrics (metric.*) and
    the value of each curve at that epoch (curve.*). A run without curves is one row with no epoch."""
    configs = [flat_config(r.config) for r in runs]
    config_cols = list(dict.fromkeys(f"config.{k}" for c in configs for k in c))
    metric_cols = list(dict.fromkeys(f"metric.{k}" for r in runs for k in r.metrics))
    curve_cols = list(dict.fromkeys(f"curve.{k}" for r in runs for k in r.curves))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_BASE + config_cols + metric_cols + curve_cols, lineterminator="\n")
    writer.writeheader()
    for run, config in zip(runs, configs):
        base = {"run_id": run.id, "label": run.label, "kind": run.kind, "status": run.status, "device": run.device,
                "seconds": run.seconds, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created)),
                **{f"config.{k}": v for k, v in config.items()}, **{f"metric.{k}": v for k, v in run.metrics.items()}}
        epochs = max((len(c) for c in run.curves.values()), default=0)
        if not epochs:
            writer.writerow(base)
        for e in range(epochs):
            writer.writerow({**base, "epoch": e + 1,
                             **{f"curve.{k}": c[e] for k, c in run.curves.items() if e < len(c)}})
    return buf.getvalue()


def to_json(runs: list) -> str:
    return json.dumps([r.to_json(with_result=True) for r in runs], indent=1, default=str)
