"""The overlapped gradient all-reduce (training/distributed.py GradientReducer): on 2 gloo
ranks it trains to exactly the weights of the flat all-reduce after backward, and its
all-reduces start while backward is still computing gradients."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from training_helpers import join_as, tiny

from translate.training import distributed
from translate.training.configure import from_dict
from translate.training.engine import Engine

BUCKET_BYTES = 2048  # the tiny networks in several buckets each


def _worker(rank: int, config: dict[str, Any], out: Path, port: int) -> None:
    join_as(rank, port)
    distributed.BUCKET_BYTES = BUCKET_BYTES
    launch = distributed._launch
    for overlap in (False, True):
        during_backward: list[bool] = []  # for each all-reduce started

        def spy(params: list, world_size: int, during: list[bool] = during_backward) -> Any:
            during.append(torch._C._current_graph_task_id() != -1)  # -1: no backward runs
            return launch(params, world_size)

        distributed._launch = spy
        config["train"]["overlap_grad_reduce"] = overlap
        t = Engine(from_dict(config), out / f"run_{overlap}", progress=False)
        t.fit()
        weights = {k: v.detach() for k, v in t.model.state_dict().items()}
        params = [k for k, _ in t.model.named_parameters()]
        torch.save(
            {"weights": weights, "params": params, "during_backward": during_backward},
            out / f"{overlap}_{rank}.pt",
        )
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_overlapped_reduce_trains_the_flat_paths_weights(
    data: Path,
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tiny("pix2pix", data, train={"batch_size": 2, "max_steps": 3, "device": "cpu"})
    mp.spawn(_worker, args=(config, tmp_path, port), nprocs=2, join=True)
    runs = {(o, r): torch.load(tmp_path / f"{o}_{r}.pt") for o in (False, True) for r in (0, 1)}
    flat, overlapped = runs[False, 0]["weights"], runs[True, 0]["weights"]
    for key in flat:  # batch norm's running statistics too: the same batches went through
        assert torch.equal(flat[key], overlapped[key]), key
    for key in runs[True, 0]["params"]:  # the ranks' (CPU batch norm keeps its own statistics)
        assert torch.equal(overlapped[key], runs[True, 1]["weights"][key]), key
    assert runs[False, 0]["during_backward"] == [False] * 6  # 3 steps x (D, G), after backward
    during = runs[True, 0]["during_backward"]
    assert len(during) > 6 and sum(during) > len(during) / 2  # buckets, most during backward
