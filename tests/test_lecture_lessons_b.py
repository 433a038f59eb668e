"""The lecture's directional steps show their lessons on held-out seeds (the rest, new steps too: tests/lessons.py)."""
import pytest
from lessons import DIRECTIONAL, FIRST, check


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in DIRECTIONAL if s.key not in FIRST], ids=lambda s: s.key)
def test_each_directional_step_shows_its_lesson_on_its_reported_seeds_and_on_seeds_from_200(step, monkeypatch):
    check(step, monkeypatch)
