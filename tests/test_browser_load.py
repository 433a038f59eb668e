"""The load-and-fault suite (tests/load_fault.py, `make load`) in its short form: one session of each
page at once, a server killed during runs of every experiment, and Stop."""
import load_fault
import pytest
from fixtures import photos_zip

# alone: each test loads the machine itself (many browser sessions, servers killed) and two time it
pytestmark = [pytest.mark.browser, pytest.mark.alone]


def test_sessions_at_once_each_equal_their_solo_run():
    s = load_fault.sessions(4)
    assert s["sessions_recorded"] == 4 and s["runs"] == 4 and s["mismatches"] == [], s


def test_a_server_killed_mid_run_keeps_every_run_as_interrupted(tmp_path):
    (tmp_path / "photos.zip").write_bytes(photos_zip(6))
    k = load_fault.kill(tmp_path / "photos.zip")
    assert k["integrity"] == "ok" and k["kept"] == k["started"] == k["prepared"] + 7, k
    assert {kind for kind, _ in k["statuses"]} == {"toy", "finetune", "sweep", "own", "continue", "ssl", "gtl"}
    assert {status for _, status in k["statuses"]} == {"interrupted"}, k


def test_stop_is_quick_and_keeps_the_epochs_done():
    t = load_fault.stop()
    assert t["latency"] < 10 and t["epochs_kept"] >= 3, t


def test_one_link_for_a_class_trains_once_and_a_later_session_sees_it_at_once():
    sh = load_fault.shared_link(8)   # a small run (a few seconds), so the eight browsers' own cost weighs in
    assert sh["runs"] == 1 and sh["statuses"] == ["finished"] and sh["same_numbers"], sh
    # eight trainings one after another would take 8x; one shared training, with eight browsers drawing on the
    # server's two cores, well under that (`make load` measures the lab's default run: docs/serving.md)
    assert sh["ratio"] < 0.75 * sh["sessions"], sh
    # the later session is shown the shared result, not a training of its own; its time is mostly a fresh Chromium
    # at the lowest priority loading the app's frontend on the server's loaded cores (1-2.4 s in clean-clone runs)
    assert sh["later_runs"] == 1 and sh["later"] < 4, sh


def test_a_worker_killed_under_waiting_sessions_tells_them_all_and_a_retry_trains_once():
    wk = load_fault.worker_kill(sessions=4, epochs=200)
    assert wk["integrity"] == "ok" and wk["killed_status"] == "failed", wk
    assert wk["retry_runs"] == 1 and wk["retry_finished"] and wk["same_numbers"], wk


def test_a_small_link_shared_by_a_class_costs_the_server_little_per_session():
    # issue #36: the server's own time (sessions that draw nothing) for 8 sessions on the small link and 30 over
    # 3 links, against one session alone measured here; `make load` prints the figures (docs/serving.md). What a
    # class would notice is the time each session adds beyond the trainings (one, and three one after another):
    # before, 1.5-2 s a session; the bound is half a second, in seconds, not as a ratio (the small link now trains
    # in about a second, so a ratio of it swings with a machine's load more than the sessions' cost does)
    sm = load_fault.small_link(8, 30, 3)
    assert sm["shared_runs"] == ["finished"] and sm["class_runs"] == ["finished"] * 3, sm
    each_of_8 = (sm["ratio"] - 1) * sm["solo"] / 8
    each_of_30 = (sm["class_ratio"] - 3) * sm["solo"] / 30
    assert each_of_8 < 0.5 and each_of_30 < 0.5, (each_of_8, each_of_30, sm)
