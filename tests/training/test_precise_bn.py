"""Precise BatchNorm: after recalibration every BatchNorm layer holds the
statistics of the recalibration clips under the final weights (not an
exponential average of stale ones), momentum and mode come back as they
were, and DDP workers end with the statistics of all their clips together."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.training.precise_bn import (
    PRECISE_BN_FRAMES,
    RecentClips,
    average_across_workers,
    bn_layers,
    recalibrate_bn,
)
from pipeline.training.trainable import ModelShape, Trainable
from tests.procs import free_ports

SHAPE = ModelShape("cnn_gru", clip_len=4, size=32, backbone="small_cnn", hidden_size=16,
                   pool_grid=2)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _clips(seed: int, n: int = 4) -> np.ndarray:
    """uint8 [n, 4, 32, 32, 3]: bright noise, so the statistics are far from 0 and 1."""
    return np.random.default_rng(seed).integers(100, 256, (n, 4, 32, 32, 3), dtype=np.uint8)


def _trained(trainable: Trainable) -> None:
    """A few large AdamW steps: the weights move, the running statistics lag behind."""
    optimizer = torch.optim.AdamW(trainable.module.parameters(), lr=0.05)
    trainable.module.train()
    for step in range(5):
        logits = trainable.module(trainable.inputs(_clips(100 + step), "cpu"))
        loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_running_stats_are_the_statistics_of_the_recalibration_clips() -> None:
    torch.manual_seed(0)
    trainable = Trainable(SHAPE, 4)
    _trained(trainable)
    module = trainable.module.eval()
    layers = bn_layers(module)
    assert len(layers) == 4  # small_cnn's four conv blocks
    first = layers[0]
    assert first.running_mean is not None and first.running_var is not None
    stale = first.running_mean.clone()
    batches = [trainable.inputs(_clips(seed), "cpu") for seed in range(3)]

    assert recalibrate_bn(module, iter(batches)) == 3

    # The first BatchNorm normalises the first conv's output: [N*T, C, H, W] per batch.
    conv: Any = module.get_submodule("backbone.features.0")
    with torch.no_grad():
        outs = [conv(x.flatten(0, 1)).transpose(0, 1).flatten(1) for x in batches]  # [C, M]
    expected_mean = torch.stack([o.mean(dim=1) for o in outs]).mean(dim=0)
    expected_var = torch.stack([o.var(dim=1) for o in outs]).mean(dim=0)  # unbiased, as BN
    torch.testing.assert_close(first.running_mean, expected_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(first.running_var, expected_var, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(stale, first.running_mean, atol=1e-2)
    # momentum and mode as they were; the statistics stay put in eval mode
    assert all(layer.momentum == 0.1 for layer in layers) and not module.training
    with torch.no_grad():
        module(batches[0])
    torch.testing.assert_close(first.running_mean, expected_mean, atol=1e-4, rtol=1e-4)


def test_no_clips_or_no_batchnorm_changes_nothing() -> None:
    torch.manual_seed(0)
    trainable = Trainable(SHAPE, 4)
    _trained(trainable)
    before = {k: v.clone() for k, v in trainable.module.state_dict().items()}
    assert recalibrate_bn(trainable.module, iter(())) == 0
    after = trainable.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert recalibrate_bn(nn.Linear(3, 2), iter([torch.zeros(2, 3)])) == 0


def test_recent_clips_keep_the_last_decoded_clips_in_equal_batches() -> None:
    recent = RecentClips(5)
    recent.add(_clips(1), np.array([True, False, True, True]))
    recent.add(_clips(2), np.array([True, True, True, True]))
    kept = list(recent.clips)
    assert len(kept) == 5
    assert np.array_equal(kept[0], _clips(1)[3])  # the oldest ones left; failed ones never came
    assert [b.shape[0] for b in recent.batches(2)] == [2, 2]  # no short last batch
    assert [b.shape[0] for b in recent.batches(16)] == [5]
    recent.clear()
    assert list(recent.batches(2)) == []
    assert RecentClips.for_clip_len(8).clips.maxlen == PRECISE_BN_FRAMES // 8


def _worker(rank: int, port: int, out: str) -> None:
    """One of two gloo workers: a BatchNorm holding the population statistics
    of this worker's half of the data, then averaged over both."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        data = torch.load(Path(out) / "data.pt")[rank]
        layer = nn.BatchNorm1d(3)
        layer.running_mean = data.mean(dim=0)
        layer.running_var = data.var(dim=0, unbiased=False)
        average_across_workers(layer)
        torch.save({"mean": layer.running_mean, "var": layer.running_var},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch (a few seconds)
def test_workers_end_with_the_statistics_of_all_their_clips(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    data = [torch.randn(200, 3, generator=generator),
            torch.randn(200, 3, generator=generator) * 3 + 5]  # the workers' data differ
    torch.save(data, tmp_path / "data.pt")
    torch.multiprocessing.spawn(_worker, args=(free_ports(1)[0], str(tmp_path)), nprocs=2)
    both = torch.cat(data)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(got["mean"], both.mean(dim=0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got["var"], both.var(dim=0, unbiased=False),
                                   atol=1e-4, rtol=1e-4)
