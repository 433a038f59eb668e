"""When does guidance help? The GTL sweep over shots × source: its grid, its JSON, its CLI twin and a cell
that can travel to another process."""
import json
from dataclasses import replace

import cloudpickle
import pytest
import torch
from fixtures import TINY_GTL

from tl_core import cli, contract, engine
from tl_core import device as devices
from tl_core.experiments import gtl, gtl_sweep

TINY = gtl_sweep.GTLSweepConfig(**TINY_GTL, shots=(1, 2), epochs=6)   # the GTL tests' setup, 2 shots values


@pytest.fixture(autouse=True)
def _one_thread():
    with devices.one_cpu_thread(torch.device("cpu")):
        yield


def test_sweep_fills_every_shots_source_condition_cell_and_scratch_is_shared(monkeypatch):
    shipped = []
    real = engine.run_cells

    def run_cells(cells, train_one, *args, **kw):
        shipped.append(cloudpickle.loads(cloudpickle.dumps(train_one)))   # a cell can go to another process
        assert (kw["engine"], kw["address"]) == ("local", "")
        return real(cells, train_one, *args, **kw)

    monkeypatch.setattr(engine, "run_cells", run_cells)
    result = gtl_sweep.run(TINY, device="cpu")
    out = result.to_json()
    json.dumps(out)
    cells = out["cells"]
    assert len(cells) == 2 * 2 * 4
    assert {(c["shots"], c["source"], c["condition"]) for c in cells} == {
        (k, s, c) for k in (1, 2) for s in ("related", "unrelated") for c in gtl_sweep.CONDITIONS}
    for c in cells:
        assert 0 <= c["val_acc_mean"] <= 1 and c["val_acc_std"] >= 0 and len(c["val_acc_seeds"]) == 2
    by = {(c["shots"], c["source"], c["condition"]): c for c in cells}
    for k in (1, 2):   # scratch never sees a source: trained once, the same numbers under both
        assert by[k, "related", "scratch"]["val_acc_seeds"] == by[k, "unrelated", "scratch"]["val_acc_seeds"]
    # 2 shots × 2 seeds × (scratch once + guided, head only and plain per source) runs
    assert len(result.runs) == 2 * 2 * 7 and out["status"] == "finished"
    assert len(out["findings"]) == 2 and out["findings"][0].startswith("Related source: guided fine-tuning beats")
    assert out["verdict"] == " ".join(out["findings"])
    from tl_core import i18n

    with i18n.using("es"):   # the page words the findings in its reader's language; the run's JSON stays as it is
        assert result.findings()[0].startswith("Fuente relacionada: el fine-tuning guiado le gana")
        assert result.to_json()["findings"] == out["findings"]
    # one guidance claim and one transfer claim per (source, shots), each by the claims rule on the cell's seeds
    assert len(out["claims"]) == 2 * 2 * 2
    for c in out["claims"]:
        cell = {cond: by[c["shots"], c["source"], cond] for cond in gtl_sweep.CONDITIONS}
        if c["question"] == "guidance":
            assert c["subject"] == "guided" and c["against"] in gtl.BASELINES
            assert c["against_mean"] == pytest.approx(max(cell[b]["val_acc_mean"] for b in gtl.BASELINES))
        else:
            assert c["against"] == "scratch"
        assert c["kind"] in ("helped", "hurt", "tie")
    assert set(out["scouts"]) == {"related", "unrelated"} and len(out["scouts"]["related"]) == TINY.scouts
    assert all(0 <= m <= 1 for m in out["guide_mean"].values())
    metrics = result.metrics()
    assert metrics["related.guided.shots1.val_acc_mean"] == by[1, "related", "guided"]["val_acc_mean"]
    assert result.headline in metrics
    # the shipped closure trains a cell on its own, with the same numbers
    again = shipped[0](contract.Cell("guided", 0, (("source", "related"), ("shots", 1))), None, None)
    assert again.val_acc == by[1, "related", "guided"]["val_acc_seeds"][0]


def test_sweep_uses_the_gtl_lab_cache_and_the_lab_config_per_source():
    lab = TINY.lab("unrelated", 5)
    assert (lab.source, lab.shots, lab.scouts, lab.data) == ("unrelated", 5, 4, "expression")
    assert (lab.temperature, lab.lr) == (gtl.GTLConfig().temperature, gtl.GTLConfig().lr)
    assert contract.record(replace(TINY, shots=(5, 1, 1)))["shots"] == [1, 5]
    assert "engine" not in contract.record(TINY)


def test_stop_before_pretraining_ends_the_sweep_as_stopped():
    result = gtl_sweep.run(replace(TINY, seed=3), should_stop=lambda: True, device="cpu")
    assert result.status == "stopped" and result.verdict().kind == "stopped" and result.runs == []


def test_cli_prints_cells_with_their_keys(capsys):
    code = cli.main(["gtl-sweep", "--shots", "1", "--sources", "related", "--seeds", "2", "--pretrain-epochs", "3",
                     "--scouts", "4", "--scout-epochs", "2", "--epochs", "5", "--val-per-class", "10",
                     "--device", "cpu", "--json", "--no-record"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [(c["shots"], c["source"], c["condition"]) for c in out["cells"]] == [
        (1, "related", c) for c in gtl_sweep.CONDITIONS]
    assert all({"val_acc_mean", "val_acc_std"} <= set(c) for c in out["cells"])


@pytest.mark.parametrize("args,message", [
    (["--shots", "0"], "shots must be between 1 and 100"),
    (["--sources", "related,mars"], "sources must be one of related, unrelated"),
    (["--seeds", "1"], "seeds must be between 2 and 50"),
    (["--data", "digits", "--target-classes", "7"], "choose 2 to 8 target classes"),
    (["--data", "digits", "--val-per-class", "100", "--shots", "1,99"], "shots=99 is more than"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(capsys, args, message):
    assert cli.main(["gtl-sweep", "--no-record", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
