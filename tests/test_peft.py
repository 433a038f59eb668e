"""Parameter-efficient fine-tuning: LoRA's counts against its adapter's shapes, merge and reload equalities, BitFit
leaving every weight matrix untouched, the frozen-prefix cache, linear CKA against its definition, the JSON the CLI
prints and its one-line errors. Tiny configs: 32 px, 2 shots, 2 seeds, 1-2 epochs, 3 classes."""
import copy
import json
import math
from dataclasses import replace

import pytest
import torch
from fixtures import TINY_PEFT

from tl_core import adapters, cli, contract, peft_methods, state, train
from tl_core import device as devices
from tl_core.cka import linear_cka
from tl_core.experiments import peft
from tl_core.plots import peft as figures

TINY = peft.PeftConfig(methods=("head", "bitfit", "lora", "full", "scratch"), ranks=(1, 4), **TINY_PEFT)
KEYS = {"method", "rank", "trainable_params", "trainable_fraction", "adapter_bytes", "full_bytes", "optimizer_bytes",
        "val_acc_mean", "val_acc_std", "val_acc_seeds", "forgetting", "seconds_per_epoch"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As `peft.run` trains (one CPU thread: at these sizes more threads only contend), for the cells called here."""
    with devices.one_cpu_thread(torch.device("cpu")):
        yield


@pytest.fixture(scope="module")
def tiny():
    return peft.run(TINY, device="cpu")


@pytest.fixture(scope="module")
def prep():
    return peft_methods.prepare(TINY, torch.device("cpu"))


# ---- linear CKA ---------------------------------------------------------------------------------------------------

def test_linear_cka_is_one_for_the_same_features_rotated_or_scaled_and_small_for_independent_ones():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=g)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-9)            # an orthogonal transform
    assert linear_cka(x, 5 * x + 3) == pytest.approx(1.0, abs=1e-9)        # a scale and a shift
    assert linear_cka(x, torch.randn(300, 30, generator=g)) < 0.3          # independent features (other width)
    assert linear_cka(x, torch.randn(300, 20, generator=g)) == pytest.approx(
        linear_cka(torch.randn(300, 20, generator=g), x), abs=0.2)
    wide = torch.randn(40, 200, generator=g)                                # n < d: the Gram-matrix route
    q2, _ = torch.linalg.qr(torch.randn(200, 200, generator=g))
    assert linear_cka(wide, wide @ q2) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(x, x[:10])
    assert math.isnan(linear_cka(torch.ones(10, 3), x[:10]))               # no variance: undefined


# ---- LoRA: counts, merge, reload ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_lora_trainable_count_is_the_sum_of_the_adapter_shapes_products(prep):
    tuned = peft_methods.fine_tune(TINY, "lora_r4", 100, prep, torch.device("cpu"))
    tensors = peft_methods.trained_tensors(TINY, tuned)
    trainable = sum(p.numel() for p in tuned.model.parameters() if p.requires_grad)
    assert trainable == sum(math.prod(v.shape) for v in tensors.values())
    lora = {k: v for k, v in tensors.items() if "lora_" in k}
    # block 7's expansion (192 → 1152) and projection (1152 → 320) 1×1 convs and conv_head (320 → 1280), rank 4 each
    assert sum(v.numel() for v in lora.values()) == 4 * ((192 + 1152) + (1152 + 320) + (320 + 1280))
    assert {k.split(".lora_")[0] for k in lora} == {"base_model.model.blocks.6.0.conv_pw",
                                                     "base_model.model.blocks.6.0.conv_pwl",
                                                     "base_model.model.conv_head"}
    assert tuned.depth == 7   # stem and blocks 1-6: frozen, no adapter, run once from the cache


@pytest.mark.slow
def test_merged_lora_and_the_reloaded_adapter_predict_as_the_adapter(tiny, prep):
    out = tiny.to_json()
    assert out["merge_max_abs_diff"] < 1e-5
    assert out["reload_max_abs_diff"] < 1e-6
    raw = tiny.adapters()["lora_r4"]
    model = adapters.load_adapter(raw)                                  # a fresh pretrained backbone + the file
    row = next(m for m in out["methods"] if m["rank"] == 4)
    assert row["adapter_bytes"] == len(raw)
    assert len(raw) < row["full_bytes"] / 50                        # the file is the adapter and head alone
    tuned = peft_methods.fine_tune(TINY, "lora_r1", 0, prep, torch.device("cpu"))
    assert type(adapters.merged(tuned.model, tuned.peft_model, "image").stages[1]).__name__ == "Sequential"
    _, va = prep.split(TINY, 0)
    probs = train.predict(model, prep.inputs[va])
    assert probs.shape == (len(va), 3)
    assert torch.allclose(probs.sum(1), torch.ones(len(va)))


@pytest.mark.slow
def test_merge_and_unload_returns_the_plain_timm_model(prep):
    import timm

    tuned = peft_methods.fine_tune(TINY, "lora_r1", 0, prep, torch.device("cpu"))
    plain = copy.deepcopy(tuned.peft_model).merge_and_unload()
    assert isinstance(plain, timm.models.efficientnet.EfficientNet)
    assert not any("lora_" in k for k in plain.state_dict())


@pytest.mark.slow
def test_the_workshop_reads_an_adapter_file(tiny):
    raw = tiny.adapters()["lora_r1"]
    f = state.read(raw, "lora.safetensors")
    assert f.format == "safetensors"
    assert any("LoRA adapter" in n and "rank 1" in n for n in f.notes)
    assert any("peft_type=LORA" in n for n in f.notes)
    ins = state.inspect(f.state, f.name, notes=f.notes)
    assert ins.total_bytes < len(raw) and {g["module"] for g in ins.groups} == {"blocks", "conv_head", "head"}
    assert state.read(raw, "no_extension").format == "safetensors"     # sniffed from the content
    assert state.adapter_notes({"fc.weight": torch.zeros(2, 2)}) == []  # a plain state_dict gets no such note


# ---- BitFit ----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_bitfit_leaves_every_weight_matrix_bit_identical(prep):
    cfg = replace(TINY, scope="all")
    tuned = peft_methods.fine_tune(cfg, "bitfit", 0, prep, torch.device("cpu"))
    before = adapters.template("image").state_dict()
    names = adapters.tensor_names(tuned.model, tuned.base)
    changed = []
    for p in tuned.model.parameters():
        key = names[id(p)]
        if key.startswith("classifier."):
            continue   # the new head
        if p.dim() >= 2 or not key.endswith("bias"):
            assert torch.equal(p.detach(), before[key]), key      # weights, BatchNorm scales: untouched
        elif not torch.equal(p.detach(), before[key]):
            changed.append(key)
    for key, buf in tuned.base.state_dict().items():
        if "running" in key:
            assert torch.equal(buf, before[key]), key              # BatchNorm statistics stay as pretrained
    assert changed and all(k.endswith("bias") for k in changed)
    assert tuned.depth == 0                                        # the stem's biases train: nothing cached


# ---- the run's JSON, the cache, the figures ------------------------------------------------------------------------

@pytest.mark.slow
def test_the_json_has_every_method_with_costs_and_forgetting(tiny):
    out = json.loads(json.dumps(tiny.to_json()))
    assert [(m["method"], m["rank"]) for m in out["methods"]] == [
        ("head", None), ("bitfit", None), ("lora", 1), ("lora", 4), ("full", None), ("scratch", None)]
    by = {(m["method"], m["rank"]): m for m in out["methods"]}
    for m in out["methods"]:
        assert KEYS <= set(m)
        assert set(m["forgetting"]) == {"agreement", "cka"} and len(m["val_acc_seeds"]) == 2
        assert m["trainable_fraction"] == pytest.approx(m["trainable_params"] / by[("full", None)]["trainable_params"])
        assert m["optimizer_bytes"] >= 8 * m["trainable_params"]   # Adam: two moments per trained weight
    assert by[("head", None)]["forgetting"] == {"agreement": 1.0, "cka": pytest.approx(1.0)}   # the body untouched
    assert (by[("lora", 1)]["trainable_params"] < by[("lora", 4)]["trainable_params"]
            < by[("full", None)]["trainable_params"])
    assert by[("lora", 4)]["adapter_bytes"] < by[("full", None)]["adapter_bytes"] == by[("full", None)]["full_bytes"]
    assert by[("scratch", None)]["forgetting"]["agreement"] < 0.5
    assert out["claim"]["against"] == "full" and out["claim"]["subject"] in ("bitfit", "lora_r1", "lora_r4")
    assert out["claim"]["kind"] in ("helped", "hurt", "tie")
    assert {"merge_max_abs_diff", "claim", "verdict", "seconds", "device", "config"} <= set(out)
    assert "full fine-tuning" in out["verdict"] and "of the weights" in out["verdict"]
    for fig in (figures.accuracy_vs_forgetting(out), figures.accuracy_vs_fraction(out)):
        assert len(fig.data) == len(out["methods"]) and fig.layout.font.size >= 15
    assert figures.accuracy_vs_fraction(out).layout.xaxis.type == "log"


@pytest.mark.slow
def test_the_frozen_prefix_cache_changes_nothing_but_the_time(prep):
    cfg = replace(TINY, methods=("lora",), ranks=(4,), seeds=1, epochs=1)
    cached = peft_methods.fine_tune(cfg, "lora_r4", 0, prep, torch.device("cpu"))
    naive = peft_methods.fine_tune(replace(cfg, cache=False), "lora_r4", 0, prep, torch.device("cpu"))
    assert cached.history.val_loss == pytest.approx(naive.history.val_loss, abs=1e-5)


@pytest.mark.slow
def test_text_lora_on_query_and_value_with_cosine_forgetting():
    cfg = peft.PeftConfig(modality="text", methods=("head", "lora"), ranks=(2,), topics=("ai", "money", "sports"),
                          shots=2, epochs=1, seeds=2, val_per_class=4, max_length=16)
    out = peft.run(cfg, device="cpu").to_json()
    assert out["dataset"] == "topics" and out["config"]["dataset"] == "topics"
    lora = next(m for m in out["methods"] if m["method"] == "lora")
    assert set(lora["forgetting"]) == {"cosine"} and 0.5 < lora["forgetting"]["cosine"] <= 1.0
    # query and value (384 × 384) of the last 2 layers at rank 2, and the head (384 → 3)
    assert lora["trainable_params"] == 2 * 2 * 2 * (384 + 384) + 3 * 384 + 3
    assert out["merge_max_abs_diff"] < 1e-5 and out["reload_max_abs_diff"] < 1e-6
    assert "query and value" in out["lora_targets"]


# ---- the command line -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["--methods", "head,prompt"], "methods must be one of"),
    (["--ranks", "4,0"], "ranks must be between 1 and 256, got 0"),
    (["--modality", "image", "--dataset", "topics"], "topics is a text dataset"),
    (["--modality", "text", "--dataset", "digits"], "digits is an image dataset"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
])
def test_bad_cli_input_is_one_line_and_exit_2(args, words, capsys):
    assert cli.main(["peft", *args, "--json", "--no-record"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_lecture_config_is_small_and_valid():
    contract.validate(peft.LECTURE)
    assert peft.LECTURE.seeds >= 2 and peft.LECTURE.conditions() == ["head", "lora_r4", "full"]
