"""The lecture outside the app: its handout (every step's title, text, verdict and chart as one self-contained
HTML page that opens offline) and its command line, `transfer-lab lecture [--handout FILE] [--check ...]`:
prepare what is missing, then write; or check that each step shows its lesson on other seeds.
"""
from __future__ import annotations

import dataclasses
import html
import importlib
import json
import os
import sys
import time

from tl_core import contract, i18n, lecture, store
from tl_core.i18n import tr
from tl_core.lecture import STEPS


def handout(db: store.Store | None, projector: bool = False, lang: str | None = None) -> str:
    """Every step's title, text, verdict and chart (plotly, embedded: the file works offline) as one HTML page, in
    `lang` (default: this context's language): its words, numbers and dates, and the charts' words too."""
    with i18n.using(lang or i18n.language()) as lang:
        return _handout(db, projector, lang)


def _handout(db: store.Store | None, projector: bool, lang: str) -> str:
    parts, first = [], True
    for i, step in enumerate(STEPS, 1):
        parts.append(f"<section><h2>{i}. {html.escape(tr(step.title))}</h2>\n<p>{_inline(tr(step.text))}</p>")
        out, run = lecture.shown(step, db)
        why = lecture.status(step)
        if why:
            parts.append(f"<p class='note'>{html.escape(why)}</p>")
        elif out is None:
            note = _text(tr("Not prepared: no run of this step's settings in the history yet (press {button}, or run "
                            "{command})."))
            parts.append("<p class='note'>" + note.format(button=f"<b>{_text(tr('Prepare the lecture'))}</b>",
                                                          command="<code>python -m tl_core lecture</code>") + "</p>")
        else:
            v = step.verdict(out)
            if v.text:
                parts.append(f"<p class='verdict {html.escape(v.kind)}'>{html.escape(v.text)}</p>")
            fig = step.chart(out)
            fig = lecture.figures_module("base").projector(fig) if projector else fig
            parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                                     config={"displaylogo": False}))
            first = False
            if run is not None:
                source = _text(tr("Run #{id} of the history, {when}, {s} s on {device}."))
                parts.append("<p class='source'>" + source.format(id=run.id, when=_when(run.created),
                                                                  s=i18n.number(run.seconds or 0, 1),
                                                                  device=html.escape(run.device)) + "</p>")
        parts.append("</section>")
    return _PAGE.format(
        lang=lang, title=_text(tr("Transfer Lab: the lecture's handout")),
        heading=_text(tr("Transfer learning, step by step")),
        intro=_text(tr("Transfer Lab's lecture: every chart is a real run, over several seeds (line: mean, band: "
                       "10th-90th percentile).")),
        made=_text(tr("Made {when}.", when=_when(time.time()))), body="\n".join(parts))


def _text(text: str) -> str:
    """Words into the page's HTML (&, < and > escaped; quotes are fine outside attributes)."""
    return html.escape(text, quote=False)


def _when(seconds: float) -> str:
    """A time as this language writes it (the format is in the catalogue: 2024-06-01 14:30 / 01-06-2024 14:30)."""
    return time.strftime(tr("%Y-%m-%d %H:%M"), time.localtime(seconds))


def _inline(text: str) -> str:
    """The steps' light markdown (*em*, **strong**, `code`) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\*(.+?)\*", r"<i>\1</i>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
h1 {{ font-size: 2em; }} h2 {{ margin-top: 2em; border-bottom: 2px solid #ddd; }}
.verdict {{ padding: .6em .9em; border-radius: .4em; background: #eef3fb; }}
.verdict.helped {{ background: #e6f4ea; }} .verdict.hurt {{ background: #fdecea; }}
.note, .source {{ color: #555; font-style: italic; }}
</style></head><body>
<h1>{heading}</h1>
<p>{intro}
{made}</p>
{body}
</body></html>
"""


# ---- the command line: python -m tl_core lecture -----------------------------------------------------

def _warm() -> None:
    """Import what reading the steps' runs and drawing the handout needs (every experiment, its figures, plotly)."""
    for step in STEPS:
        try:
            step.config() if step.trains() else step.experiment()
            if step.page:
                lecture.figures_module({"finetune": "finetune", "gtl_sweep": "gtl", "state": "state"}.get(
                    step.module, step.module or "state"))
        except Exception:  # noqa: BLE001 - only a head start: whatever fails here fails again, and is said, later
            pass
    importlib.import_module("tl_core.experiments.domains")


def said(step: lecture.Step, out: dict) -> list[str]:
    """What a step's run claims, a line each: its lesson's claims (a directional step), else its verdict."""
    checks = step.checks(out)
    if checks:
        return [c.line() for c in checks]
    v = step.verdict(out)
    return [f"{v.kind}: {v.text}"]


def _about(seconds: float, n: int, workers: int) -> str:
    if not n:
        return "every step is in the history already: nothing to train"
    return (f"{n} step{'s' * (n != 1)} to train, about {max(seconds, 1):.0f} s on an idle 2-core machine"
            + (f" ({workers} worker processes)" if workers > 1 else ""))


def _main(args) -> int:
    if args.check:
        return _check(args)
    folder = os.path.dirname(os.path.abspath(args.handout)) if args.handout else ""
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):   # say so before minutes of training
        raise ValueError(f"can't write the handout to {args.handout}: {folder} is not a writable folder")
    db = store.Store(args.data_dir)
    show = not args.json or getattr(args, "progress", False)
    start = time.perf_counter()
    # the workers start first: they import torch and the experiments while this process plans
    workers = lecture.workers_for(args.device)
    pool = lecture.Workers(workers, str(db.root), "cli", args.device) if workers > 1 else None
    workers = len(pool) if pool else 1
    if not db.runs():   # an empty history: every step trains (known without importing the experiments)
        trained = [step.seconds for step in STEPS if step.trains()]
        seconds, n = lecture.makespan(trained, workers) + (lecture.STARTUP_S if workers > 1 else 0.0), len(trained)
    else:
        seconds, n, workers = lecture.estimate(db, args.device, workers=workers)
    if show:
        sys.stderr.write(f"Preparing the lecture: {_about(seconds, n, workers)}.\n")
    progress = (lambda f, m: sys.stderr.write(f"\r{f:4.0%} {m[:70]:<70}")) if show else None
    if pool is not None:   # what the claims and the handout need, imported while the workers train
        import threading

        threading.Thread(target=_warm, daemon=True).start()
    done = lecture.prepare(db, session="cli", progress=progress, device=args.device, pool=pool)
    took = time.perf_counter() - start
    if progress is not None:
        sys.stderr.write("\n")
    steps = []
    for p in done:
        out_, _ = lecture.shown(p.step, db) if p.state in ("ran", "history", "instant") else (None, None)
        steps.append({**p.to_json(), "claims": said(p.step, out_) if out_ else [],
                      "lesson": [{"what": c.what, "want": list(c.want), "kind": (c.claim or {}).get("kind"),
                                  "holds": c.holds} for c in (p.step.checks(out_) if out_ else [])]})
    out = {"steps": steps, "database": str(db.path), "seconds": took, "lecture.estimate": seconds, "workers": workers}
    if args.handout:   # written at the end, from the history: every step prepared now or before
        with open(args.handout, "w", encoding="utf-8") as f:
            f.write(handout(db))
        out["handout"] = args.handout
    if args.json:
        print(json.dumps(out))
    else:
        for p, s in zip(done, steps):
            secs = f"{p.seconds:5.1f} s" if p.seconds is not None else ""
            print(f"{p.number:>2}. {p.step.title:<58} {p.state:<11} {secs}" + (f"  {p.message[:60]}" if p.message and
                                                                                  p.state != "instant" else ""))
            for line in s["claims"]:
                print(f"      {line}")
        print(f"prepared in {took:.1f} s ({n} step{'s' * (n != 1)} trained, {workers} worker "
              f"process{'es' * (workers != 1)})")
        if args.handout:
            print(f"handout: {args.handout}")
    return 1 if any(p.state in ("failed", "stopped", "diverged") for p in done) else 0


CHECK_FIRSTS = "reported,200"   # `make lecture-check`: the reported seeds and the first other draw


def check(firsts: list[int | None], device: str = "auto", workers: int | None = None, steps=None,
          progress=None) -> list[dict]:
    """Train steps (default: every one that trains) on their reported seeds (first None) and each directional step
    on seeds from each other first seed too, without recording: one row per (step, first seed) with its time, its
    lesson's checks (a directional step) and what it says."""
    jobs, rows = [], []
    for number, step in enumerate(STEPS, 1):
        if (steps is not None and step.key not in steps) or not step.trains() or lecture.status(step):
            continue
        for first in firsts:
            if first is not None and step.lesson is None:
                continue
            cfg = step.config() if first is None else dataclasses.replace(step.config(), seed=first)
            rows.append({"step": number, "key": step.key, "title": step.title, "first_seed": cfg.seed,
                         "seeds": getattr(cfg, "seeds", None), "reported": first is None})
            jobs.append((len(jobs), step.key, cfg, "check"))
    order = sorted(jobs, key=lambda job: -STEPS[rows[job[0]]["step"] - 1].seconds)

    def on_event(event) -> None:
        if event[0] == "done":
            row, step = rows[event[1]], STEPS[rows[event[1]]["step"] - 1]
            out = event[6]
            row.update(state=event[2], seconds=event[4], message=event[5],
                       checks=[{"what": c.what, "want": list(c.want), "holds": c.holds, "line": c.line()}
                               for c in (step.checks(out) if out else [])],
                       said=said(step, out) if out else [])
            row["holds"] = event[2] == "ran" and all(c["holds"] for c in row["checks"])
            if progress is not None:
                progress(sum("state" in r for r in rows) / len(rows), row)

    workers = max(1, min(lecture.workers_for(device) if workers is None else workers, len(jobs)))
    if workers > 1:
        lecture.Workers(workers, None, "check", device).run(order, on_event)
    else:
        for job in order:
            step = STEPS[rows[job[0]]["step"] - 1]
            on_event(("done", job[0], *lecture.check_run(step, job[2], None, None, device)))
    return rows


def _check(args) -> int:
    firsts = [None if f.strip() == "reported" else int(f) for f in args.check.split(",") if f.strip()]
    start = time.perf_counter()

    def progress(fraction, row) -> None:
        if not args.json:
            print(_check_lines(row), flush=True)

    rows = check(firsts, args.device, progress=progress)
    took = time.perf_counter() - start
    failed = [r for r in rows if not r.get("holds") and (r.get("checks") or r.get("state") != "ran")]
    if args.json:
        print(json.dumps({"rows": rows, "seconds": took, "failed": len(failed)}))
    else:
        print(f"checked {len(rows)} runs in {took:.0f} s: " + (
            "every directional step shows its lesson on every draw" if not failed else
            f"{len(failed)} do NOT: " + ", ".join(f"step {r['step']} from seed {r['first_seed']}" for r in failed)))
    return 1 if failed else 0


def _check_lines(row: dict) -> str:
    seeds = f"seeds {row['first_seed']}-{row['first_seed'] + row['seeds'] - 1}" if row.get("seeds") else \
        f"seed {row['first_seed']}"
    head = (f"{row['step']:>2}. {row['title'][:48]:<48} {seeds:<14} {'reported' if row['reported'] else 'other':<8} "
            f"{row.get('seconds') or 0:5.1f} s  {row.get('state')}")
    lines = [c["line"] for c in row.get("checks", [])] or row.get("said", []) or [row.get("message", "")]
    return "\n".join([head, *(f"      {line}" for line in lines)])


EXPERIMENTS = (
    contract.Experiment(
        "lecture", "the lecture's steps: run every step that has no run in the history yet, and write the handout",
        main=_main, recorded=False, options=(
            contract.Option("--handout", "write the handout here: one self-contained HTML file"),
            contract.Option("--data-dir", "where the run history lives"),
            contract.Option("--check", "instead: train every step on its reported seeds and each directional step on "
                                       "seeds from these first seeds too (comma-separated, 'reported' for its own; "
                                       f"make lecture-check: {CHECK_FIRSTS}), without recording; print each claim "
                                       "and time; exit 1 where a lesson does not hold"))),
)
