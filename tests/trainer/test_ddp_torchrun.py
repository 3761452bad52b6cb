"""``torchrun --nproc_per_node 2`` trains the DDRAN with DDP (gloo, CPU) for a few steps.

Two processes on loopback: both ranks run, each trains on its own share of the lungs, the
parameters agree across the ranks afterwards, and only rank 0 writes the run directory.  The run
keeps a moving average of the weights (``optim.ema_decay``), which is what gets tested and loaded.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.conftest import tiny_ddran_config
from trainer.config import load_config
from trainer.distributed import SINGLE, Distributed, parameter_digest
from trainer.train import build_model, load_checkpoint_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).parent / "torchrun"
CASES = ("caseA", "caseB", "caseC")
TIMEOUT_S = 300


def _tiny_run(tmp_path: Path, phantom_samples) -> Path:
    # three "patients": two to train on (4 lungs), one held out
    return tiny_ddran_config(tmp_path, phantom_samples, CASES, 'batch_size = 1\ndevice = "cpu"\nema_decay = 0.5\n')


def test_torchrun_two_processes_train_the_ddran_with_ddp(tmp_path, phantom_samples):
    config = _tiny_run(tmp_path, phantom_samples)
    out = tmp_path / "run"
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "trainer.train"]
    command += ["--config", str(config), "--out", str(out), "--stage", "final"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]

    # both ranks joined the gloo group and reported the checksum of their parameters
    for rank in (0, 1):
        assert f"rank {rank}/2 (local {rank}) joined the gloo process group" in log, log[-4000:]
    digests = dict(re.findall(r"rank (\d)/2: trained on \d+ samples, parameters sha256 ([0-9a-f]{64})", log))
    assert sorted(digests) == ["0", "1"], log[-4000:]
    assert digests["0"] == digests["1"]

    # rank 0's checkpoint holds exactly those parameters and their moving average, which is what loads
    tiny = load_config(config)
    state = torch.load(out / "final" / "checkpoint.pt", weights_only=False)
    plain = build_model(tiny)
    plain.load_state_dict(state["model"])
    assert parameter_digest(plain) == digests["0"]
    assert state["ema_steps"] == 2  # one step per epoch on each rank, the same update on both
    model, history = load_checkpoint_model(tiny, out / "final" / "checkpoint.pt")
    assert parameter_digest(model) != digests["0"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state["ema_model"][key])
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    record = json.loads((out / "final" / "distributed.json").read_text())
    assert record["world_size"] == 2 and record["backend"] == "gloo"
    assert record["parameters_sha256"] == digests["0"]

    # each epoch: one step of one lung per rank, different lungs on the two ranks, all training lungs
    split = json.loads((out / "split.json").read_text())
    training_lungs = {f"{case}_{s.side}" for case in split["train"] for s in phantom_samples}
    by_rank = record["samples_by_rank"]
    assert len(by_rank) == 2
    for epoch in range(2):
        seen = [set(by_rank[rank][epoch]) for rank in (0, 1)]
        assert all(len(lungs) == 1 for lungs in seen), by_rank
        assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] <= training_lungs, by_rank

    # one writer: a single checkpoint and history, no partial files, the held-out table once
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("checkpoint.pt")) == ["final/checkpoint.pt"]
    assert len(list(out.rglob("history.json"))) == 1 and not list(out.rglob("*.partial"))
    assert "perfusion/network/spect" in (out / "final" / "metrics.md").read_text()


def test_shards_are_disjoint_padded_and_cover_the_epoch():
    order = np.random.default_rng(0).permutation(7)
    shards = [Distributed(rank=r, world_size=3).shard(order) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 7 padded to 9 with the first 2 entries
    assert sorted(np.concatenate(shards).tolist()) == sorted([*order.tolist(), *order[:2].tolist()])
    even = [Distributed(rank=r, world_size=3).shard(order[:6]) for r in range(3)]
    assert sorted(np.concatenate(even).tolist()) == sorted(order[:6].tolist())  # no padding: disjoint shares
    np.testing.assert_array_equal(SINGLE.shard(order), order)


def test_evaluation_split_keeps_the_order():
    items = list("abcdefg")
    parts = [Distributed(rank=r, world_size=3).split(items) for r in range(3)]
    assert [x for part in parts for x in part] == items and [len(p) for p in parts] == [2, 3, 2]
    assert SINGLE.split(items) == items and SINGLE.gather(items) == items


def test_parameter_digest_sees_a_single_changed_weight():
    layer = torch.nn.Linear(3, 2)
    before = parameter_digest(layer)
    with torch.no_grad():
        layer.weight[0, 0] += 1e-6
    assert parameter_digest(layer) != before and len(before) == 64
