"""The training loop: loss falls on real text, KD of a perfect copy is zero, two gloo ranks stay identical,
a SIGKILLed run resumes bitwise, corrupted checkpoints are refused, further training starts from an export."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from atb import Arch, SuperBert, SuperBertConfig, extract, export, from_bert
from atb.checkpoint import CheckpointError, load_latest, save_checkpoint
from atb.losses import KDLoss
from atb.teacher import load_teacher
from atb.train import TrainConfig, Trainer, point_space, read_log

pytestmark = pytest.mark.skipif(not os.environ.get("ATB_DATA_DIR"), reason="needs the local corpus (ATB_DATA_DIR)")

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


def test_kd_loss_is_zero_for_an_exact_copy_of_the_teacher():
    teacher = load_teacher("minilm-offline")
    arch = Arch(6, 384, 1536, 12, 384)
    student = SuperBert(SuperBertConfig.from_space(point_space(arch, "kd"))).eval()
    encoder = {k: v for k, v in from_bert(teacher.model).state_dict().items() if not k.startswith("pooler.")}
    student.bert.load_state_dict(encoder, strict=True)
    loss = KDLoss(384, 384)
    with torch.no_grad():
        loss.fit_dense.weight.copy_(torch.eye(384))
        loss.fit_dense.bias.zero_()
    ids = torch.randint(1000, 5000, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    t = teacher(ids, attention_mask=mask)
    s = student(ids, attention_mask=mask, arch=arch)
    value = loss(s.last_hidden_state, s.attention_scores, t.last_hidden_state, t.attention_scores, mask)["loss"]
    assert value.item() < 1e-9


def test_two_gloo_processes_train_identical_weights_and_archs(tmp_path):
    config = write_config(tmp_path / "c.yaml", steps=3, objective="kd")
    script = tmp_path / "rank.py"
    script.write_text(
        "import hashlib, json, os, sys, torch\n"
        "from atb.train import TrainConfig, train\n"
        f"cfg = TrainConfig.load(r'{config}')\n"
        f"res = train(cfg, r'{tmp_path / 'run'}')\n"
        "h = hashlib.sha256()\n"
        "for k, v in sorted(res.model.state_dict().items()): h.update(k.encode()); h.update(v.numpy().tobytes())\n"
        f"open(r'{tmp_path}' + f'/rank{{os.environ[\"RANK\"]}}.json', 'w').write(json.dumps({{'sha': h.hexdigest(), 'archs': res.archs}}))\n"
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(script)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["archs"] == r1["archs"] and len(r0["archs"]) == 3
    assert r0["sha"] == r1["sha"]


def test_sigkill_and_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    config = write_config(tmp_path / "c.yaml", steps=8, objective="mlm")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert run_cli("--config", str(config), "--run-dir", str(tmp_path / "full"), env=env).returncode == 0
    cmd = [sys.executable, "-m", "atb.train", "--config", str(config), "--run-dir", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoints" / "step-000004").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    assert run_cli("--config", str(config), "--run-dir", str(tmp_path / "killed"), env=env).returncode == 0
    a = load_file(tmp_path / "full" / "final" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_log(tmp_path / "killed")] == list(range(1, 9))
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
    assert all(r["archs"] == [str(arch)] for r in read_log(tmp_path / "further"))


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
    from atb.space import SearchSpace
    space = SearchSpace.preset("smoke", "mlm")
    for archs in result.archs:
        assert archs[:2] == [str(space.largest()), str(space.smallest())] and len(archs) == 3
    assert all(r["loss"] > 0 for r in read_log(tmp_path))
    with pytest.raises(ValueError, match="inplace_distillation"):
        TrainConfig(**{**TINY, "objective": "kd", "sampler": "sandwich", "inplace_distillation": True})
