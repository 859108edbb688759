"""The training loop: loss falls on real text, KD of a perfect copy is zero, two gloo ranks train what one process
trains, SIGKILLed runs (MLM, KD, sandwich + in-place distillation, further training) resume bitwise, corrupted
checkpoints are refused, further training starts from an export, in-place distillation's targets are right."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from atb import Arch, SearchSpace, SuperBert, SuperBertConfig, extract, export, from_bert
from atb.checkpoint import CheckpointError, load_latest, save_checkpoint
from atb.objectives import KDObjective
from atb.teacher import load_teacher
from atb.train import TrainConfig, Trainer, point_space, read_log

pytestmark = pytest.mark.requires_data  # the local corpus

TINY = dict(scale="smoke", space="smoke", max_documents=40, max_seq_len=64, batch_size=8, lr=2e-3,
            warmup_steps=2, checkpoint_every=2, seed=0)


def write_config(path: Path, **fields) -> Path:
    """A scale config whose ``pretrain`` section is ``TINY`` with ``fields`` over it."""
    settings = {**TINY, **fields}
    path.write_text(yaml.safe_dump({"scale": settings.pop("scale", "smoke"), "pretrain": settings}))
    return path


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atb.train", *args], capture_output=True, text=True, **kw)


def test_mlm_loss_decreases_on_real_text(tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 40, "arch": "1/64/128/2/32", "objective": "mlm", "checkpoint_every": 40})
    Trainer(cfg, tmp_path).run()
    losses = [r["loss"] for r in read_log(tmp_path)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert len(losses) == 40 and last < first - 1.0, (first, last)  # from ln(30522) = 10.3, a clear margin


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_kd_steps_compute_student_and_teacher_in_the_configured_precision(tmp_path, precision, dtype):
    """Autocast reaches the student's and the teacher's matmuls (not only the loss), the weights stay fp32, and the
    run records how it computed (``engine.json``: the precision, the CPU, whether it computes bf16 natively)."""
    cfg = TrainConfig(**{**TINY, "steps": 1, "objective": "kd", "precision": precision})
    trainer = Trainer(cfg, tmp_path)
    seen = {"student": set(), "teacher": set()}
    for who, model in (("student", trainer.model), ("teacher", trainer.objective.teacher)):
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) or type(module).__name__ == "ElasticLinear":
                module.register_forward_hook(lambda m, args, out, who=who: seen[who].add(out.dtype))
    trainer.run()
    assert seen == {"student": {dtype}, "teacher": {dtype}}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    record = json.loads((tmp_path / "engine.json").read_text())
    assert record["computed_in"] == precision and record["cpu"] and "native_bf16" in record


@pytest.mark.parametrize("layers", ["last", "uniform"])
def test_kd_loss_is_zero_for_an_exact_copy_of_the_teacher(layers):
    """KDObjective, teacher call included: a student holding the teacher's weights, W_fit = identity, gives 0 (also
    layer-wise: at the teacher's depth every layer learns from its own twin)."""
    objective = KDObjective(load_teacher("minilm-offline"), max_student_hidden=384, layers=layers)
    arch = Arch(6, 384, 1536, 12, 384)
    student = SuperBert(SuperBertConfig.from_space(point_space(arch, "kd"))).eval()
    encoder = {k: v for k, v in from_bert(objective.teacher.model).state_dict().items() if not k.startswith("pooler.")}
    student.bert.load_state_dict(encoder, strict=True)
    with torch.no_grad():
        objective.fit_dense.weight.copy_(torch.eye(384))
        objective.fit_dense.bias.zero_()
    ids = torch.randint(1000, 5000, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    out = objective(student, {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}, arch)
    assert out.loss.item() < 1e-9 and out.attention.item() < 1e-9 and out.hidden.item() < 1e-9
    with torch.no_grad():
        objective.fit_dense.weight.mul_(2.0)  # the hidden term sees W_fit: a wrong projection is not free
    assert objective(student, {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)},
                     arch).hidden.item() > 1e-3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_two_gloo_processes_train_what_one_process_trains_on_the_global_batch(tmp_path, objective):
    # no dropout: the one process and the two ranks draw their dropout masks from different streams; fp32: under bf16
    # autocast (precision auto on a CPU with native bf16) the rounding depends on each process's batch shape
    config = write_config(tmp_path / "c.yaml", steps=3, objective=objective, dropout=0.0, precision="fp32")
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.Popen([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                            "--master_port", str(free_port()), "-m", "atb.train", "--config", str(config),
                            "--run-dir", str(tmp_path / "two")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    Trainer(TrainConfig.load(config), tmp_path / "one").run()  # meanwhile, one process on the global batches
    output = two.communicate(timeout=600)[0]
    assert two.returncode == 0, output[-3000:]
    one_log, two_log = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["archs"] for r in two_log] == [r["archs"] for r in one_log] and len(one_log) == 3
    assert [r["tokens"] for r in two_log] == [r["tokens"] for r in one_log]
    assert [r["loss"] for r in two_log] == pytest.approx([r["loss"] for r in one_log], rel=1e-5)
    for name in ("model.safetensors", "objective.safetensors"):
        if objective == "mlm" and name == "objective.safetensors":
            continue
        a, b = load_file(tmp_path / "one" / "final" / name), load_file(tmp_path / "two" / "final" / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-4, msg=f"{name}: {k}")  # per-rank means: ~4e-3


RESUMED = {  # config fields and CLI arguments of each kind of run a SIGKILL must not change
    "mlm": ({"objective": "mlm"}, []),
    "kd": ({"objective": "kd"}, []),
    "sandwich-inplace": ({"objective": "mlm", "sampler": "sandwich", "sampler_k": 1, "inplace_distillation": True}, []),
    "further-training": ({"objective": "kd"}, ["--further-train", "--arch", "1/48/64/12/36"]),
    "kd-bf16": ({"objective": "kd", "precision": "bf16"}, []),  # bf16 autocast (emulated on a CPU without it)
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", RESUMED)
def test_sigkill_and_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path, kind):
    fields, extra = RESUMED[kind]
    config = write_config(tmp_path / "c.yaml", steps=10, **fields)
    if kind == "further-training":
        torch.manual_seed(0)
        supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", "kd")))
        export(extract(supernet, Arch.parse(extra[-1])), tmp_path / "init")
        extra = [*extra, "--init", str(tmp_path / "init")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "atb.train", "--config", str(config), *extra, "--run-dir"]
    full_err = open(tmp_path / "full.stderr", "w")
    full = subprocess.Popen([*cmd, str(tmp_path / "full")], stdout=subprocess.DEVNULL, stderr=full_err, env=env)
    killed = subprocess.Popen([*cmd, str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoints" / "step-000004").exists():
        assert killed.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "final").exists()
    assert full.wait(timeout=600) == 0, (tmp_path / "full.stderr").read_text()[-3000:]
    full_err.close()
    resumed = subprocess.run([*cmd, str(tmp_path / "killed")], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "full" / "final").glob("*.safetensors"))
    assert "model.safetensors" in files and ("objective.safetensors" in files) == (fields["objective"] == "kd")
    for name in files:
        a = load_file(tmp_path / "full" / "final" / name)
        b = load_file(tmp_path / "killed" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["step"] for r in read_log(tmp_path / "killed")] == list(range(1, 11))
    assert [r["loss"] for r in read_log(tmp_path / "killed")] == [r["loss"] for r in read_log(tmp_path / "full")]


def test_corrupted_latest_checkpoint_is_refused_and_previous_kept(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (2, 4):
        save_checkpoint(root, step, {"model": {"w": torch.full((3,), float(step))}}, {"step": step})
    latest = root / "step-000004" / "model.safetensors"
    latest.write_bytes(latest.read_bytes()[:-4] + b"XXXX")
    with pytest.raises(CheckpointError, match=r"step-000004.*corrupted.*step-000002 is intact"):
        load_latest(root)
    assert (root / "step-000002").is_dir() and (root / "step-000004").is_dir()
    import shutil
    shutil.rmtree(root / "step-000004")
    assert load_latest(root).step == 2


def test_checkpoint_retention_keeps_at_least_two(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"model": {"w": torch.zeros(1)}}, {"step": step}, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000003", "step-000004"]


@pytest.mark.slow
def test_further_training_starts_from_an_exported_submodel(tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 2, "objective": "kd"})
    supernet = Trainer(cfg, tmp_path / "one-shot").run().model
    arch = Arch(1, 48, 64, 12, 36)
    export(extract(supernet, arch), tmp_path / "extracted")
    config = write_config(tmp_path / "c.yaml", steps=2, objective="kd")
    out = run_cli("--config", str(config), "--run-dir", str(tmp_path / "further"), "--further-train",
                  "--arch", str(arch), "--init", str(tmp_path / "extracted"))
    assert out.returncode == 0, out.stderr[-3000:]
    final = json.loads((tmp_path / "further" / "final" / "config.json").read_text())
    assert (final["num_hidden_layers"], final["hidden_size"], final["qkv_size"]) == (1, 48, 36)
    objective = json.loads((tmp_path / "further" / "final" / "objective.json").read_text())
    assert objective["objective"] == "kd" and objective["max_student_hidden"] == 48  # W_fit beside the export
    assert set(load_file(tmp_path / "further" / "final" / "objective.safetensors")) == {"fit_dense.weight",
                                                                                      "fit_dense.bias"}
    assert all(r["archs"] == [str(arch)] for r in read_log(tmp_path / "further"))


def test_layerwise_kd_is_a_kd_option_named_in_the_recipe():
    assert TrainConfig(objective="kd", kd_layers="uniform", init_from="minilm-offline").recipe == "teacher-rewired+layerwise"
    with pytest.raises(ValueError, match="kd_layers"):
        TrainConfig(objective="mlm", kd_layers="uniform")


def test_bad_config_names_the_file_and_field(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", steps=2, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"bad.yaml: pretrain.*learning_rate"):
        TrainConfig.load(bad)
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="mse")


def test_sandwich_rule_with_inplace_distillation_trains_largest_smallest_and_random(tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 2, "objective": "mlm", "sampler": "sandwich", "sampler_k": 1,
                         "inplace_distillation": True})
    result = Trainer(cfg, tmp_path).run()
    space = SearchSpace.preset("smoke", "mlm")
    for archs in result.archs:
        assert archs[:2] == [str(space.largest()), str(space.smallest())] and len(archs) == 3
    assert [r["archs"] for r in read_log(tmp_path)] == result.archs
    with pytest.raises(ValueError, match="inplace_distillation"):
        TrainConfig(**{**TINY, "objective": "kd", "sampler": "sandwich", "inplace_distillation": True})


def test_inplace_distillation_targets_are_the_largest_sub_models_detached_softmax(tmp_path, monkeypatch):
    cfg = TrainConfig(**{**TINY, "steps": 2, "objective": "mlm", "sampler": "sandwich", "sampler_k": 1,
                         "inplace_distillation": True, "dropout": 0.0,  # no dropout: recomputable outputs
                         "precision": "fp32"})  # the check below recomputes them outside the trainer's autocast
    trainer = Trainer(cfg, tmp_path)
    seen = []  # the targets each sub-model of the step is scored against
    forward = trainer.objective.forward

    def spy(student, batch, arch, targets=None, **kw):
        seen.append(targets)
        return forward(student, batch, arch, targets, **kw)

    monkeypatch.setattr(trainer.objective, "forward", spy)
    archs, batch = trainer.sampler.archs(0), trainer.batch(0)
    losses = list(trainer.losses(batch, archs))
    assert archs[0] == trainer.space.largest() and len(losses) == len(seen) == 3

    mine = trainer.share(batch)
    inputs = {"attention_mask": mine["attention_mask"], "token_type_ids": mine["token_type_ids"]}
    labels = mine["labels"][mine["labels"] != -100]
    with torch.no_grad():  # independently: the sub-models' logits at the masked positions
        logits = [trainer.model(mine["input_ids"], arch=arch, labels=mine["labels"], **inputs).logits for arch in archs]
    soft = logits[0].softmax(-1)
    assert seen[0] is None  # the largest learns from the labels
    torch.testing.assert_close(losses[0], F.cross_entropy(logits[0], labels))
    for targets, loss, student in zip(seen[1:], losses[1:], logits[1:]):
        assert targets is seen[1] and not targets.requires_grad  # one detached target for all the others
        torch.testing.assert_close(targets, soft)
        torch.testing.assert_close(loss, F.cross_entropy(student, soft))  # torch's soft-label cross-entropy
        assert not torch.allclose(loss, F.cross_entropy(student, labels))  # not the labels' loss


def test_kd_distils_on_unmasked_text_and_mlm_masks():
    """The official code distils with `masked_lm_prob 0`: student and teacher see the real text."""
    from atb.data import MLMCollator, load_tokenizer
    from atb.fitness import HeldOutKDFitness, HeldOutMLMFitness

    assert TrainConfig(scale="smoke", objective="kd").mask_probability == 0.0
    assert TrainConfig(scale="smoke", objective="mlm").mask_probability == 0.15
    assert TrainConfig(scale="smoke", objective="kd", mask_probability=0.15).mask_probability == 0.15  # on request
    with pytest.raises(ValueError, match="mask_probability.*MLM"):
        TrainConfig(scale="smoke", objective="mlm", mask_probability=0.0)
    with pytest.raises(ValueError, match="mask_probability"):
        TrainConfig(scale="smoke", objective="kd", mask_probability=1.0)
    tokenizer = load_tokenizer()
    examples = [{"input_ids": tokenizer("the cat sat on the mat and looked at the dog")["input_ids"]}] * 4
    g = torch.Generator().manual_seed(0)
    unmasked = MLMCollator(tokenizer, mlm_probability=0.0, generator=g)(examples)
    assert torch.equal(unmasked["input_ids"], MLMCollator(tokenizer).pad(examples)["input_ids"])
    assert (unmasked["labels"] == -100).all()
    masked = MLMCollator(tokenizer, mlm_probability=0.5, generator=torch.Generator().manual_seed(0))(examples)
    assert (masked["labels"] != -100).any()
    assert HeldOutKDFitness.mlm_probability == 0.0 and HeldOutMLMFitness.mlm_probability == 0.15
