from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from trainables import common


def test_seed_everything_makes_all_generators_repeat() -> None:
    common.seed_everything(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    common.seed_everything(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_rng_state_round_trip() -> None:
    common.seed_everything(1)
    state = common.rng_state()
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    common.set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_check_finite_names_the_epoch(value: float) -> None:
    with pytest.raises(FloatingPointError, match="epoch 7"):
        common.check_finite(value, 7)
    common.check_finite(1.5, 7)


def test_outside_tune_reports_are_recorded_and_resume_state_is_local() -> None:
    common.LOCAL_SESSION.reset()
    assert not common.in_tune_session()
    assert common.load_resume_state() is None
    common.report_epoch({"epoch": 1, "score": torch.tensor(3.5), "x": np.float32(2.0)}, {"epoch": 1})
    assert common.LOCAL_SESSION.reports == [{"epoch": 1, "score": 3.5, "x": 2.0}]
    assert common.LOCAL_SESSION.last_state == {"epoch": 1}
    common.LOCAL_SESSION.resume_state = {"epoch": 1}
    assert common.load_resume_state() == {"epoch": 1}
    common.LOCAL_SESSION.reset()


def test_device_and_amp_follow_cuda() -> None:
    device, amp = common.device_and_amp()
    assert (device.type == "cuda") == torch.cuda.is_available() == amp
