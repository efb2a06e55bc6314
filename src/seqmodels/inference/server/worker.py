"""The model in a process of its own: the server's event loop and the model never wait for each other's GIL.

In one process, the event loop's thread (HTTP parsing, JSON, the batcher) held the GIL that the model's thread needs
back after every torch op, and at 32 clients the model ran at about half its offline speed, with the cores partly
idle. In a child process the model has its own interpreter; the parent sends each batch's token lists and gets the
records back (pickled, a few hundred microseconds per batch).

Several children (:class:`ModelPool`, ``--model-processes``) run several batches at once, each with its own torch
threads: on this 2-core CPU two processes of one thread served 1.4x the tokens/s of one process of two threads at 32
clients (benchmarks/README.md), since an LSTM's small per-step matmuls keep two threads of one process waiting on
each other, and each process does its Python work (reading words, decoding) while the other computes.

Each child is forked from a fork server that has imported torch but run nothing, so starting one is quick and safe
with OpenMP and CUDA. It ignores SIGINT and SIGTERM: the parent drains first and then stops it. It checks every
second that the server process still exists, and exits when it does not (a server killed with SIGKILL never
stops it otherwise: it waits on its call queue forever, and the fork server waits for it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from seqmodels.inference.backends import load_predictor
from seqmodels.inference.predictor import Predictor

Records = list[dict[str, Any]]
_predictor: Predictor | None = None  # in the child: the model it serves


class ModelStopped(RuntimeError):
    """The model's process ended (killed, out of memory, crashed): nothing more can be predicted."""

    def __init__(self) -> None:
        super().__init__("the model's process stopped (killed, out of memory or crashed)")


def _start(threads: int, server: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent drains first
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(server,), daemon=True, name="server-watch").start()
    if threads:
        torch.set_num_threads(threads)


def _exit_without(server: int) -> None:
    """Exit once the process ``server`` has gone (checked every second)."""
    while _exists(server):
        time.sleep(1.0)
    os._exit(0)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only whether the process exists
    except ProcessLookupError:
        return False
    return True


def _load(checkpoint: str, backend: str, device: str, batch_size: int, precision: str) -> dict[str, Any]:
    global _predictor
    _predictor = load_predictor(checkpoint, backend, device, batch_size, precision=precision)
    return model_info(_predictor) | {"pid": os.getpid()}


def _predict(sentences: list[list[str]]) -> Records:
    assert _predictor is not None, "_load runs first"
    return _predictor(sentences)


def model_info(predictor: Predictor) -> dict[str, Any]:
    """Each head (what it reads, the record fields it writes, prediction first, where CoNLL-U puts it, its classes
    or their number), the model's settings, and torch's threads where the model runs."""
    heads = {name: {"reads": head.reads, "fields": list(head.fields), "conllu": head.conllu,
                    "classes": head.classes if head.confusion_report else len(head.classes)}
             for name, head in predictor.model.heads.items()}  # fmt: skip
    hparams = {k: v for k, v in predictor.model.hparams.items() if k not in ("vocab",) and not k.startswith("_")}
    return {"heads": heads, "model": hparams, "threads": torch.get_num_threads()}


class ModelProcess:
    """A predictor whose model runs in a child process: call :meth:`load` once, then call it with token lists.

    Calls block until the child answers (without holding the GIL), so make them from a thread, not the event loop.
    An exception in the child (a token the model cannot read) is raised here; a child that died raises
    :class:`ModelStopped`.
    """

    def __init__(self, threads: int = 0) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # the fork server imports torch and this package once
        self.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(threads, os.getpid()))
        self.pid: int | None = None  # the child's, once loaded

    def load(self, checkpoint: str, backend: str, device: str, batch_size: int, precision: str) -> dict[str, Any]:
        """Load the model in the child; what :func:`model_info` says of it."""
        info = self._call(_load, checkpoint, backend, device, batch_size, precision)
        self.pid = info.pop("pid")
        return info

    def alive(self) -> bool:
        """Whether the child still runs (readiness asks it, so that a killed model is noticed without traffic)."""
        return self.pid is None or _exists(self.pid)

    def __call__(self, sentences: list[list[str]]) -> Records:
        return self._call(_predict, sentences)

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return self.pool.submit(function, *args).result()
        except BrokenProcessPool:
            raise ModelStopped from None

    def close(self) -> None:
        """Stop the child, at once: the server has answered every request by now, and a child that hangs (stopped,
        or stuck in a batch past the drain's timeout) would keep this process's exit waiting for its call."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.pid is not None and _exists(self.pid):
            os.kill(self.pid, signal.SIGKILL)


def split_cores(processes: int, threads: int, device: str) -> tuple[int, int]:
    """The model processes to start and the torch threads of each: ``processes`` 0 is 2 on a CPU where torch's threads
    (one per core, or ``OMP_NUM_THREADS``) are enough for two processes of ``threads`` each (of 1 when ``threads`` is
    0), else 1 (and 1 on a GPU); ``threads`` 0 shares torch's threads between the processes."""
    cores = torch.get_num_threads()
    processes = processes or (2 if device == "cpu" and cores >= 2 * max(threads, 1) else 1)
    return processes, threads or max(1, cores // processes)


class ModelPool:
    """``processes`` :class:`ModelProcess` children behind one call, which several threads may make at once: each
    call goes to the child with the fewest calls in flight (an idle one, when the batcher runs at most ``processes``
    batches at once). Load once with :meth:`load`."""

    def __init__(self, processes: int = 1, threads: int = 0) -> None:
        self.models = [ModelProcess(threads) for _ in range(processes)]
        self.calls = [0] * processes  # in flight, per child
        self.lock = threading.Lock()

    @property
    def pids(self) -> list[int | None]:
        return [model.pid for model in self.models]

    def load(self, checkpoint: str, backend: str, device: str, batch_size: int, precision: str) -> dict[str, Any]:
        """Load the model in every child at once; what :func:`model_info` says of it (the first failure is raised)."""
        with ThreadPoolExecutor(len(self.models)) as loading:
            loads = [loading.submit(model.load, checkpoint, backend, device, batch_size, precision)
                     for model in self.models]  # fmt: skip
            return [load.result() for load in loads][0]

    def alive(self) -> bool:
        """Whether every child still runs."""
        return all(model.alive() for model in self.models)

    def __call__(self, sentences: list[list[str]]) -> Records:
        with self.lock:
            child = self.calls.index(min(self.calls))
            self.calls[child] += 1
        try:
            return self.models[child](sentences)
        finally:
            with self.lock:
                self.calls[child] -= 1

    def close(self) -> None:
        for model in self.models:
            model.close()
