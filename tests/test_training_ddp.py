"""``ferkit train`` under ``torchrun --nproc_per_node=2`` (DDP, gloo on CPU).

One torchrun job runs two trainings through the CLI (the first sets up and tears down its own
process group, the second runs in a group the launcher made), and every process saves the weights
its model ended with (the test model remembers
its instances, see ``training_support``), so the test can compare the ranks with each other and
with a one-process run of the same global batch.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import training_support  # noqa: F401  (registers "test_small")
from conftest import synthetic_faces, write_class_folders
from ferkit.training import TrainConfig, train
from ferkit.training.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

LAUNCHER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import torch
    import torch.distributed as dist
    import training_support
    from ferkit.app.cli import main

    runs, dump = json.loads(sys.argv[1]), sys.argv[2]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    for index, argv in enumerate(runs):
        if index:
            # The first run set up and tore down its own group on torchrun's store; a second group
            # in the same process gets a fresh store (reusing torchrun's races on stale keys).
            dist.init_process_group("gloo", init_method=f"file://{{dump}}/store{{index}}", rank=rank,
                                    world_size=world)
        code = main(argv)
        if code:
            sys.exit(code)
        torch.save(training_support.BUILT[-1].state_dict(), f"{{dump}}/run{{index}}_rank{{rank}}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()
""")

# The same global batch of 16 (8 per process), no augmentation so both runs see the same pixels; float32,
# since bf16 autocast (the default on CPUs with native bf16) rounds the two ways of summing differently.
COMMON = ["--epochs", "2", "--batch-size", "16", "--threads", "1", "--precision", "fp32", "--weight-decay", "0",
          "--aug-flip", "no",
          "--aug-shift", "0", "--aug-rotate", "0", "--aug-scale", "0", "--aug-crop", "48", "--aug-erase-p", "0"]


@pytest.fixture(scope="module")
def ddp_job(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    data = base / "fer"
    faces, labels = synthetic_faces(48, seed=5)
    write_class_folders(data / "train", faces, labels, "Training")
    # One file named for another split than its folder's: the folder decides, with a warning (said once).
    misnamed = next((data / "train").rglob("Training_0.png"))
    misnamed.rename(misnamed.with_name("PublicTest_0.png"))
    faces, labels = synthetic_faces(14, seed=6)
    write_class_folders(data / "test", faces, labels, "PublicTest")
    runs = [
        # A: no batch norm, plain SGD: must follow the one-process run, class weights and mixup included.
        ["train", "--data", str(data), "--out", str(base / "a"), "--model", "test_small", "--optimizer", "sgd",
         "--lr", "0.1", "--schedule", "cosine", "--warmup-epochs", "0.5", "--mixup", "0.4", "--balance", "weights",
         *COMMON],
        # B: batch norm, centre loss, EMA, and a frozen backbone unfrozen in epoch 2 (DDP is rebuilt).
        ["train", "--data", str(data), "--out", str(base / "b"), "--model", "test_small",
         "--model-option", "norm=true", "--optimizer", "adam", "--lr", "0.01", "--center-loss", "0.01",
         "--ema", "0.9", "--freeze", "-1", "--unfreeze-epoch", "1", *COMMON],
    ]
    (base / "launch.py").write_text(LAUNCHER.format(tests=str(TESTS)))
    dump = base / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FERKIT_CACHE_DIR": str(base / "cache")}
    # Its own session, so a hung job (a collective that never completes) is killed with its workers.
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(base / "launch.py"), json.dumps(runs), str(dump)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun job hung; its output:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    return base, data, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def rank_weights(base: Path, run: int) -> tuple[dict, dict]:
    return tuple(torch.load(base / "dump" / f"run{run}_rank{rank}.pt", weights_only=True) for rank in (0, 1))


@pytest.mark.parametrize("run", [0, 1])
def test_both_ranks_end_with_identical_weights(ddp_job, run):
    base, _, _ = ddp_job
    rank0, rank1 = rank_weights(base, run)
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # parameters and (batch-norm) buffers alike
        assert torch.equal(rank0[key], rank1[key]), key
    saved = load_checkpoint(base / "ab"[run] / "last.pt")
    for key in rank0:
        assert torch.equal(saved["model"][key], rank0[key]), key


def test_two_processes_follow_the_one_process_run(ddp_job, tmp_path):
    base, data, _ = ddp_job
    saved = TrainConfig.load(base / "a" / "config.json")
    single = saved.replace(out=str(tmp_path / "single"))
    with pytest.warns(UserWarning, match="named for another split"):  # the misnamed file (ddp_job)
        train(single, log=lambda message: None)
    expected = load_checkpoint(tmp_path / "single" / "last.pt")["model"]
    got, _ = rank_weights(base, 0)
    torch.manual_seed(saved.seed)
    initial = training_support.SmallNet(width=8).state_dict()
    for key in expected:
        assert torch.allclose(got[key], expected[key], rtol=1e-4, atol=1e-6), key
    # ... and training moved the weights far more than that tolerance
    assert max(float((expected[k] - initial[k]).abs().max()) for k in expected) > 1e-2
    history = json.loads((base / "a" / "history.json").read_text())
    single_history = json.loads((tmp_path / "single" / "history.json").read_text())
    assert len(history) == len(single_history) == saved.epochs
    for mine, theirs in zip(history, single_history):  # figures over the whole global batch
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
        assert mine["train_acc"] == theirs["train_acc"] and mine["val_acc"] == theirs["val_acc"]


def test_rank_zero_alone_logs_and_writes(ddp_job):
    base, _, result = ddp_job
    summaries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 2 and all(s["processes"] == 2 and s["epochs_run"] == 2 for s in summaries)
    assert result.stderr.count("epoch 1/2 ") == 2 and result.stderr.count("epoch 2/2 ") == 2  # once per run
    assert "2 process(es)" in result.stderr
    # Both processes read the data; the first alone passes its warning on (once per run).
    assert result.stderr.count("ferkit: warning: ") == 2 and result.stderr.count("named for another split") == 2
    for name in "ab":
        files = {p.name for p in (base / name).iterdir()}
        assert files == {"config.json", "last.pt", "best.safetensors", "history.csv", "history.json",
                         "curves.png", "summary.json", ".lock"}
    frozen_run = load_checkpoint(base / "b" / "last.pt")
    assert frozen_run["center_loss"]["centers"].abs().sum() > 0 and "ema" in frozen_run
