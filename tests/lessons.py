"""Each directional lecture step's lesson, checked on its real config (not the tiny one) on the seeds the lecture
reports and on seeds from 200: the slowest checks of the suite, in two test files (test_lecture_lessons*.py) so
that two pytest-xdist workers share them (make test distributes whole files)."""
import dataclasses

from tl_core import lecture

DIRECTIONAL = [s for s in lecture.STEPS if s.lesson is not None]
# the steps of test_lecture_lessons.py (about half the time); every other step, new ones too, in _b
FIRST = {"freeze", "peft", "ssl", "toy", "idea"}


def check(step, monkeypatch) -> None:
    """The step's real config, on the seeds the lecture reports and on seeds from 200 (never used to choose it):
    every claim its lesson rests on has the kind the lesson says, by the claims rule. `make lecture-check` runs
    the same for every step at once and prints each claim."""
    monkeypatch.delenv(lecture.TINY_ENV, raising=False)
    cfg = step.config()
    assert getattr(cfg, "seeds", 3) >= 3
    for first in (cfg.seed, 200):
        out = lecture.result_json(step.run(dataclasses.replace(cfg, seed=first), device="cpu"))
        checks = step.checks(out)
        assert checks and all(c.holds for c in checks), (first, [c.line() for c in checks])
