"""Lecture mode: every step renders, a prepared lecture shows each step's chart from the history at once, Stop
keeps what ran, links open the full pages with the step's settings, and the handout holds every step.

The lecture runs its tiny configs here (TL_LECTURE_TINY=1) in a history of its own, prepared once per session
(`prepare` skips the steps already in it, so the browser test reuses it): the fixtures `lecture_env` and `prepared`
in conftest.py."""
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import torch
from fixtures import TINY_LAB, link, open_page
from streamlit.testing.v1 import AppTest

from tl_core import cli, contract, experiments, i18n, lecture, lecture_cli, pages, run_request, store
from tl_core import device as devices
from tl_core.plots import base

N = len(lecture.STEPS)
PAGE = "app_pages/lecture.py"


def _walk(at: AppTest):
    """Every step in order with the Next button: (number, the app after it rendered)."""
    for number in range(1, N + 1):
        if number > 1:
            at.button(key="lec_next").click().run()
        assert not at.exception, f"step {number}: {at.exception}"
        assert at.query_params["step"] == [str(number)] or at.query_params["step"] == str(number)
        yield number, at


@pytest.mark.slow
def test_every_step_renders_with_a_run_button_a_chart_or_a_plain_notice(lecture_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))   # an empty history: nothing prepared
    for number, at in _walk(open_page(PAGE, {})):
        step = lecture.step_at(number)
        assert at.header[0].value == f"{number}. {step.title}"
        assert not lecture.status(step), lecture.status(step)   # every part of the lecture is here and builds
        if step.trains():
            assert [b.label for b in at.button if b.key == f"lec_run_{step.key}"] == ["Run live"]
            assert not at.get("plotly_chart")
        else:
            assert len(at.get("plotly_chart")) == 1   # computed at once: nothing to train


@pytest.mark.slow   # the shared prepared lecture: every step's run
def test_a_prepared_lecture_shows_every_steps_chart_from_the_history(prepared, lecture_env):
    assert {p.state for p in prepared} <= {"ran", "history", "instant"}, [p.to_json() for p in prepared]
    ids = {p.step.key: p.run_id for p in prepared if p.state in ("ran", "history")}
    assert len(ids) >= 5   # idea, overfit, toy, freeze, ssl, gtl (and those of the newer pages once they land)
    at = open_page(PAGE, {})
    at.button(key="lec_prepare").click().run()   # the page's own Prepare: everything is in the history already
    assert [s.value for s in at.success] == [f"Prepared: 0 step(s) run now, {len(ids)} already in the history. The "
                                             f"handout below now holds every step."]
    assert any("Every step is prepared" in c.value for c in at.sidebar.caption)
    for number, at in _walk(open_page(PAGE, {})):
        step = lecture.step_at(number)
        if step.key in ids:
            caption = " ".join(c.value for c in at.caption)
            assert f"From the run history: run #{ids[step.key]}" in caption
            assert len(at.get("plotly_chart")) == 1
            assert [b.label for b in at.button if b.key == f"lec_run_{step.key}"][0].startswith("Re-run live")
            spec = json.loads(at.get("plotly_chart")[0].proto.spec)
            assert spec["data"], step.key                          # a chart with something on it
            stored = store.Store(lecture_env).get(ids[step.key]).result
            assert spec["data"] == json.loads(step.chart(stored).to_json())["data"]   # the run's JSON, drawn


@pytest.mark.slow   # the shared prepared lecture: every step's run
def test_preparing_again_runs_nothing_and_the_cli_writes_a_handout_with_every_step(prepared, lecture_env, tmp_path,
                                                                                   capsys):
    out = tmp_path / "handout.html"
    assert cli.main(["lecture", "--data-dir", str(lecture_env), "--handout", str(out), "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert [s["state"] for s in steps] == [p.state if p.state != "ran" else "history" for p in prepared]
    text = out.read_text(encoding="utf-8")
    for number, step in enumerate(lecture.STEPS, 1):
        assert f"<h2>{number}. {step.title}</h2>" in text
    charts = sum(s["state"] in ("history", "instant") for s in steps)
    assert text.count('class="plotly-graph-div"') == charts
    assert text.count("plotly.js v") >= 1 and 'src="https://' not in text   # plotly inline: the file works offline


def test_cli_refuses_a_handout_it_cannot_write_before_training_anything(lecture_env, tmp_path, capsys):
    assert cli.main(["lecture", "--data-dir", str(tmp_path), "--handout", str(tmp_path / "no" / "h.html")]) == 2
    assert "can't write the handout" in capsys.readouterr().err
    assert store.Store(tmp_path).runs() == []


@pytest.mark.slow   # the shared prepared lecture: every step's run
def test_re_run_live_trains_the_step_again_and_records_it(prepared, lecture_env):
    step = next(s for s in lecture.STEPS if s.key == "gtl")
    db = store.Store(lecture_env)
    before = len(db.runs(kind=step.kind))
    at = open_page(PAGE, {"step": str(lecture.STEPS.index(step) + 1)})
    at.button(key="lec_run_gtl").click().run()
    assert not at.exception
    assert "Live run" in " ".join(c.value for c in at.caption)
    assert len(db.runs(kind=step.kind)) == before + 1
    assert db.runs(kind=step.kind)[0].status == "finished"


def test_stop_while_preparing_keeps_the_run_as_stopped_and_skips_the_rest(lecture_env, tmp_path):
    db = store.Store(tmp_path)
    asked = []
    with devices.one_cpu_thread(torch.device("cpu")):
        done = lecture.prepare(db, progress=lambda f, m: asked.append(m), should_stop=lambda: bool(asked), device="cpu",
                               workers=1)
    trained = [p for p in done if p.state not in ("unavailable", "instant")]
    assert {p.state for p in trained} == {"stopped"}
    started = [p for p in trained if p.run_id is not None]   # the first run (the longest step), kept as stopped
    assert len(started) == 1 and started[0].step.seconds == max(p.step.seconds for p in trained)
    assert [r.status for r in db.runs()] == ["stopped"]


@pytest.mark.slow
def test_a_step_that_fails_while_preparing_is_named_and_the_rest_still_run(lecture_env, tmp_path, monkeypatch):
    toy, gtl = (next(s for s in lecture.STEPS if s.key == k) for k in ("toy", "gtl"))
    monkeypatch.setattr(lecture, "STEPS", (toy, gtl))
    real = run_request.execute

    def execute(request, *args, **kwargs):   # every run starts training here (the server rebuilds it from its request)
        if request.experiment == "toy":
            raise RuntimeError("out of memory\nmore lines")
        return real(request, *args, **kwargs)

    monkeypatch.setattr(run_request, "execute", execute)
    db = store.Store(tmp_path)
    with devices.one_cpu_thread(torch.device("cpu")):
        done = lecture.prepare(db, device="cpu", workers=1)   # in this process: the patched run is this process's
    state, message = done[0].state, done[0].message                   # one line: what the run failed with
    assert state == "failed" and message.endswith("out of memory") and "more lines" not in message
    assert done[1].state == "ran"
    assert sorted((r.kind, r.status) for r in db.runs()) == [(gtl.kind, "finished"), ("toy", "failed")]




@pytest.mark.parametrize("step", [s for s in lecture.STEPS if s.page and s.page != "toy"],  # the toy trains on opening
                         ids=lambda s: s.key)
def test_open_in_the_full_page_carries_the_steps_settings(lecture_env, step):
    if lecture.status(step):
        pytest.skip(lecture.status(step))
    url = lecture.link(step)
    assert url.startswith(f"/{step.page}?")
    params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    at = open_page(pages.page(step.page).file, params)
    assert not at.exception
    assert not [w.value for w in at.warning if "link" in w.value]   # every value is one the page can use
    for key, value in params.items():
        # every setting the step changes is a widget of its page (no fallback to a default there); the lab's sweep
        # widgets are drawn only once the lab has a result, so the link keeps their values until then
        assert key in at.session_state or key.startswith("ft_sweep_"), f"{step.key}: the page has no widget {key}"
        got = at.session_state[key] if key in at.session_state else at.query_params[key]
        texts = [str(v).lower() for v in (got if isinstance(got, (list, tuple)) else [got])]
        want = [str(v).lower() for v in (value if isinstance(value, list) else [value])]
        assert texts == want or [float(t) for t in texts] == [float(w) for w in want], (key, got, value)


def test_a_link_opens_its_step_and_a_bad_step_is_named(lecture_env):
    at = open_page(PAGE, {"step": "5"})
    assert at.header[0].value == f"5. {lecture.step_at(5).title}"
    assert not [i for i in at.info if "Teacher notes" in i.value]
    at.toggle(key="lec_notes").set_value(True).run()
    notes = [i.value for i in at.info if "Teacher notes" in i.value]
    assert notes == [f"**Teacher notes.** {lecture.step_at(5).notes}"]
    at = open_page(PAGE, {"step": "seven"})
    assert at.header[0].value.startswith("1. ")
    assert any("step `seven`" in w.value for w in at.warning)


def test_the_projector_view_never_shows_the_teacher_notes(lecture_env):
    """The class sees the projected page: notes switched on in the normal view stay off the projector."""
    at = open_page(PAGE, {"step": "5"})
    at.toggle(key="lec_notes").set_value(True).run()
    assert [i for i in at.info if "Teacher notes" in i.value]
    at.toggle(key="lec_big").set_value(True).run()
    assert not at.exception
    assert not [i for i in at.info if "Teacher notes" in i.value]
    assert lecture.step_at(5).notes not in " ".join(m.value for m in [*at.markdown, *at.info, *at.caption])
    at = open_page(PAGE, {"step": "5", "lec_big": "true", "lec_notes": "true"})   # nor from a link
    assert not [i for i in at.info if "Teacher notes" in i.value]


def test_projector_view_enlarges_the_chart_text(lecture_env):
    number = next(i for i, s in enumerate(lecture.STEPS, 1) if not s.trains())
    sizes = []
    for big in ("false", "true"):
        at = open_page(PAGE, {"step": str(number), "lec_big": big})
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        sizes.append(spec["layout"]["font"]["size"])
    assert sizes[1] >= 1.4 * sizes[0]
    step = lecture.STEPS[number - 1]
    fig = step.chart(lecture.weights_demo(step.experiment()))
    assert base.projector(fig).layout.title.font.size >= 1.4 * fig.layout.title.font.size


def test_handout_of_an_empty_history_names_every_step_and_says_what_is_missing(lecture_env, tmp_path):
    text = lecture_cli.handout(store.Store(tmp_path))
    assert all(step.title.split(":")[0] in text for step in lecture.STEPS)
    assert text.count("Not prepared") == sum(s.trains() and not lecture.status(s) for s in lecture.STEPS)


def test_the_lab_page_and_the_lecture_draw_the_same_figure_for_one_stored_run(lecture_env):
    """One chart per claim: the lab page's curves of a run, and the lecture's chart of that run read back from the
    history, are one figure (same traces, same title), drawn by the same function from the recorded JSON."""
    at = open_page("app_pages/finetune.py", link("ft", {**TINY_LAB, "epochs": 1, "seeds": 2, "shots": 2}))
    at.button(key="ft_train").click().run()
    assert not at.exception
    page_spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Overfitting" in c.proto.spec)
    run = store.Store().runs(kind="finetune")[0]
    step = lecture.STEPS[0]
    assert step.kind == "finetune"
    lecture_fig = json.loads(step.chart(store.Store().get(run.id).result).to_json())
    assert page_spec["data"] == lecture_fig["data"]
    assert page_spec["layout"]["title"] == lecture_fig["layout"]["title"]


@pytest.mark.parametrize("step", lecture.STEPS, ids=lambda s: s.key)
def test_every_steps_config_builds_in_both_sizes(step, monkeypatch):
    """A step whose config no longer builds (a renamed field, a value out of range) fails here, not quietly as an
    'unavailable' step on the projector."""
    for tiny in ("0", "1"):
        monkeypatch.setenv(lecture.TINY_ENV, tiny)
        if step.trains():
            contract.validate(step.config())
        else:
            assert step.compute(step.experiment())["status"] == "finished"



@pytest.mark.slow   # the shared prepared lecture: every step's run
def test_each_step_says_what_its_own_run_shows_from_its_claims(prepared, lecture_env):
    """A step's words come from its run's claim (the claims rule), kind for kind, with the run's numbers in them."""
    db = store.Store(lecture_env)
    checked = 0
    for step in lecture.STEPS:
        out, _ = lecture.shown(step, db)
        if not out or not out.get("claim") or step.key == "overfit":
            continue
        said, claim = step.verdict(out), out["claim"]
        assert said.kind == claim["kind"], (step.key, said, claim)
        if claim["metric"] == "accuracy":
            assert f"{claim['subject_mean']:.0%}" in said.text and f"{claim['against_mean']:.0%}" in said.text
        if claim["kind"] == "tie":
            assert "tie" in said.text or "cannot tell" in said.text, said.text
        checked += 1
    assert checked >= 4
    step = next(s for s in lecture.STEPS if s.key == "far")
    far = lecture.shown(step, db)[0]
    for x in far["negative_transfer"]:   # named with both numbers, and said
        assert f"{x['scratch_acc']:.0%}" in step.verdict(far).text


@pytest.mark.slow   # starts two worker processes (each imports every experiment)
def test_stop_while_preparing_in_worker_processes_keeps_every_started_run_as_stopped(lecture_env, tmp_path):
    db = store.Store(tmp_path)
    asked = []
    done = lecture.prepare(db, progress=lambda f, m: asked.append(m), should_stop=lambda: bool(asked), device="cpu",
                           workers=2)
    trained = [p for p in done if p.state not in ("unavailable", "instant")]
    assert {p.state for p in trained} == {"stopped"}, [(p.step.key, p.state) for p in trained]
    runs = db.runs()
    assert 1 <= len(runs) <= 2 and {r.status for r in runs} == {"stopped"}   # at most one running step a worker
    assert sorted(r.id for r in runs) == sorted(p.run_id for p in trained if p.run_id is not None)


@pytest.mark.slow   # the shared prepared lecture: every step's run
def test_a_step_prepared_in_a_worker_process_has_the_numbers_of_a_run_alone(prepared, lecture_env):
    """Workers train each step on one thread, as a run alone does: the same numbers, claim for claim."""
    db = store.Store(lecture_env)
    # trained now, or by an earlier Prepare on this history (the browser test's page), in worker processes both
    assert any(p.state in ("ran", "history") for p in prepared)
    assert not [p.step.key for p in prepared if p.state in ("failed", "stopped", "diverged")]
    for key in ("toy", "overfit"):
        step = next(s for s in lecture.STEPS if s.key == key)
        stored, _ = lecture.shown(step, db)
        alone = lecture.result_json(step.run(step.config(), device="cpu"))
        assert [c.claim for c in step.checks(stored)] == [c.claim for c in step.checks(alone)], key


def test_the_estimate_counts_the_steps_to_train_and_shares_them_between_the_workers(lecture_env, tmp_path):
    seconds, todo, workers = lecture.estimate(store.Store(tmp_path), device="cpu", workers=2)
    trained = list({(s.kind, s.config()): s for s in lecture.STEPS if s.trains() and not lecture.status(s)}.values())
    assert todo == len(trained) and workers == 2
    total = sum(s.seconds for s in trained)
    assert total / 2 <= seconds - lecture.STARTUP_S <= total / 2 + max(s.seconds for s in trained)
    assert lecture.makespan([5, 4, 3, 3], 2) == 8 and lecture.makespan([5, 4], 1) == 9   # the longest first
    assert lecture.estimate(store.Store(tmp_path), device="cpu", workers=1)[0] == pytest.approx(total)


def test_on_an_empty_history_the_sidebar_says_how_long_prepare_will_take(lecture_env, tmp_path, monkeypatch):
    """Before the class the teacher sees, beside Prepare, the estimate's seconds (whatever the sentence around it)."""
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))   # a history with no step prepared
    seconds, todo, _ = lecture.estimate(store.Store(tmp_path))
    at = open_page(PAGE, {})
    assert not at.exception and todo > 0
    said = f"{i18n.number(max(seconds, 1), 0)} s"
    assert [c.value for c in at.sidebar.caption if said in c.value], [c.value for c in at.sidebar.caption]


def test_the_freeze_steps_lesson_reads_feature_extraction_against_the_other_depths_shots_by_shots():
    records = [{"weights": "pretrained", "seed": seed, "freeze": depth, "shots": shots, "val_acc": acc}
               for seed, wiggle in enumerate((0.0, 0.01, -0.01))
               for shots, by in ((2, {"9": 0.70, "7": 0.60}), (20, {"9": 0.85, "7": 0.92}))
               for depth, acc in ((d, a + wiggle * (1 if d == "9" else -1)) for d, a in by.items())]
    out = {"shots": [2, 20], "stages": [str(i) for i in range(10)], "records": records}
    step = next(s for s in lecture.STEPS if s.key == "freeze")
    checks = step.checks(out)
    assert [(c.claim["shots"], c.claim["kind"], c.holds) for c in checks] == [(2, "helped", True), (20, "hurt", True)]
    said = step.verdict(out).text
    assert "feature extraction 70% beats partial fine-tuning (the last 3 stages) 60%" in said
    assert "partial fine-tuning (the last 3 stages) 92% beats feature extraction 85%" in said
    flipped = {**out, "records": [{**r, "val_acc": 1 - r["val_acc"]} for r in records]}
    assert [c.holds for c in step.checks(flipped)] == [False, False]
    assert "NOT as the lesson says" in step.checks(flipped)[0].line()


def test_the_strategy_step_says_what_a_tie_means_and_calls_it_no_agreement():
    from tl_core.experiments import domains

    t = [{"dataset": "textures", "domain": "near", "shots": sh, "strategy": st, "seed": i, "val_acc": a,
          "train_acc": 1.0} for sh in (2, 10) for st, accs in (("feature_extraction", (0.9, 0.8, 0.85)),
                                                              ("partial", (0.82, 0.9, 0.86)),
                                                              ("full", (0.8, 0.86, 0.84)))
         for i, a in enumerate(accs)]
    cfg = domains.DomainsConfig(datasets=("textures",), shots=(2, 10), strategies=("feature_extraction", "partial",
                                                                                    "full"), seeds=3).resolve()
    out = domains.DomainsResult(config=cfg, records=t).to_json()
    said = next(s for s in lecture.STEPS if s.key == "strategy").verdict(out)
    assert said.kind == "tie" and all(q["agrees"] is None for q in out["quadrants"])
    assert "the data can't tell" in said.text and "A tie is an answer too" in said.text
    assert "agrees" not in said.text


def _cli_flags(cfg) -> list[str]:
    """The command line a user types for a config: each setting that differs from its default, under its flag."""
    flags, default = [], type(cfg)()
    for s in contract.settings(cfg):
        value = getattr(cfg, s.name)
        if s.cli and value != getattr(default, s.name):
            if s.kind is bool and not s.many:
                flags.append(s.flag if value else "--no-" + s.flag[2:])
            else:
                flags += [s.flag, s.text(value)]
    return flags


@pytest.mark.parametrize("step", [s for s in lecture.STEPS if s.trains()], ids=lambda s: s.key)
def test_a_steps_settings_on_the_command_line_are_the_same_run_as_the_lecture_asks_for(step):
    """The CLI's request for a step's settings is the lecture's (one thread apart): the same recorded config, the
    same settings the history does not record, the same identity, so the same numbers and the same history entry."""
    cfg = step.config()
    exp = experiments.command(step.kind)
    parser = cli.OneLineParser()
    contract.add_flags(parser, exp.config)
    typed = contract.from_args(exp.config, parser.parse_args(_cli_flags(cfg)))
    mine, theirs = lecture.request_for(step, cfg), run_request.RunRequest.of(step.kind, typed)
    assert (mine.config, mine.how, mine.identity()) == (theirs.config, theirs.how, theirs.identity())


@pytest.mark.slow   # two tiny trainings
def test_lecture_step_1_gives_the_same_numbers_from_the_cli(monkeypatch, capsys, tmp_path):
    """Step 1 trained as the lecture trains it (its request, one thread) and from `python -m tl_core finetune` with
    the step's settings: the same accuracy, seed by seed."""
    monkeypatch.setenv(lecture.TINY_ENV, "1")
    step = lecture.step_at(1)
    cfg = step.config()
    lectured = lecture.result_json(step.run(cfg, device="cpu"))
    assert cli.main([step.kind, *_cli_flags(cfg), "--device", "cpu", "--json", "--no-record",
                     "--data-dir", str(tmp_path)]) == 0
    typed = json.loads(capsys.readouterr().out)
    for name, cond in lectured["conditions"].items():
        assert typed["conditions"][name]["val_acc_seeds"] == cond["val_acc_seeds"], name
