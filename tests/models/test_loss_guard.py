import math

import pytest
import torch

from seqmodels.models.loss_guard import ACCELERATOR_READ_EVERY, LossGuard, NonFiniteLossError, read_every


def test_every_step_is_read_on_the_cpu_and_every_few_steps_elsewhere():
    assert read_every(torch.device("cpu")) == 1
    assert read_every(torch.device("cuda", 0)) == ACCELERATOR_READ_EVERY > 1  # a device object only: no GPU needed


def test_read_every_step_a_nan_loss_stops_at_its_step_naming_the_batch():
    guard = LossGuard()
    guard.watch(torch.tensor(1.5), 0, lambda: "unused")
    with pytest.raises(NonFiniteLossError, match=r"the training loss is nan at global step 1 \(batch 1\)"):
        guard.watch(torch.tensor(math.nan), 1, lambda: "batch 1")


def test_read_every_few_steps_the_first_bad_step_is_found_at_the_next_read():
    guard = LossGuard(every=4)
    for step, loss in enumerate([1.0, math.inf, math.nan]):  # not read yet: nothing waits for the values
        guard.watch(torch.tensor(loss), step, lambda: "unused")
    with pytest.raises(NonFiniteLossError, match=r"not finite at global step 1 \(found reading steps 0-3: .* every 4"):
        guard.watch(torch.tensor(2.0), 3, lambda: "unused")  # step 3: the fourth, a read
    guard.watch(torch.tensor(2.0), 4, lambda: "unused")  # a read starts afresh
    guard.read()  # what a checkpoint does first: steps 4-4 were fine
    guard.read()  # nothing watched since: nothing to read


def test_a_checkpoint_reads_the_steps_not_read_yet():
    guard = LossGuard(every=50)
    guard.watch(torch.tensor(math.nan), 7, lambda: "unused")
    with pytest.raises(NonFiniteLossError, match=r"global step 7 \(found reading steps 7-7"):
        guard.read()
