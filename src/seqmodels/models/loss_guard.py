"""Stops training at a NaN or infinite loss, without making a GPU wait for its result at every step.

Reading a loss on the host (``if not torch.isfinite(loss)``) waits for the device to finish the step's forward
pass: free on the CPU, where the value is there already, but on a GPU it stops the host from queueing the next
kernels. So on the CPU each step is read before its update; on an accelerator the steps' findings stay on the
device and are read every 50 steps (Lightning's default logging cadence, when the logger reads the loss anyway),
before each validation and checkpoint, and when training ends. The run stops within 50 steps of the first bad
loss, and every checkpoint on disk is from good steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


ACCELERATOR_READ_EVERY = 50  # steps: Lightning's default logging cadence, when the logger reads the loss anyway


def read_every(device: torch.device) -> int:
    """How often the guard reads its findings on ``device``: every step on the CPU, where reading costs nothing."""
    return 1 if device.type == "cpu" else ACCELERATOR_READ_EVERY


class LossGuard:
    """Watches each training step's loss; raises :class:`NonFiniteLossError` at the first non-finite one that it
    reads (see the module)."""

    def __init__(self, every: int | None = None) -> None:
        self.every = every  # steps between reads; None: :func:`read_every` of the loss's device
        self.first_bad: Tensor | None = None  # (), on the loss's device: the first bad step not read yet, or -1
        self.steps = (0, 0)  # the first and the last step watched since the last read

    def watch(self, loss: Tensor, step: int, describe: Callable[[], str]) -> None:
        """Check the loss of global step ``step`` now or later (``every``); ``describe()`` names its batch."""
        self.every = self.every or read_every(loss.device)
        if self.every == 1:
            if not torch.isfinite(loss):  # before the update: the weights in memory are still good too
                raise NonFiniteLossError(f"the training loss is {loss.item()} at global step {step} ({describe()}); "
                                         "stopped before updating the weights: any checkpoint on disk is from a good "
                                         "step")
            return
        bad = ~torch.isfinite(loss.detach())  # (), on the device: nothing waits for it
        if self.first_bad is None:
            self.first_bad, self.steps = torch.full_like(bad, -1, dtype=torch.long), (step, step)
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        self.steps = (self.steps[0], step)
        if (step + 1) % self.every == 0:
            self.read()

    def read(self) -> None:
        """Raise if a step watched since the last read had a non-finite loss (this waits for the device)."""
        if self.first_bad is None:
            return
        first_bad, (since, until) = int(self.first_bad), self.steps
        self.first_bad = None
        if first_bad >= 0:
            raise NonFiniteLossError(
                f"the training loss is not finite at global step {first_bad} (found reading steps {since}-{until}: "
                f"on this device the loss is read every {self.every} steps, so that no step waits for it); stopped "
                "before writing a checkpoint: the checkpoints on disk are from good steps"
            )
