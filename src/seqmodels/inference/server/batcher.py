"""Dynamic batching with bounded work per forward pass, fair across requests, run off the event loop's thread.

A request's sentences join a queue as one :class:`Job`, and each batch holds at most ``max_batch_size``
sentences and ``max_batch_tokens`` tokens, taken from the jobs in turn. A request that fits in one batch (a
*short* one) goes ahead of those that need several (*long* ones), since that batch answers it; the long ones
take turns, one batch each, to the back of the queue after theirs. Batches of short jobs are not
topped up with a long job's sentences, which would make them as slow as a long batch; long batches are topped up
with short jobs' sentences. Short jobs never pass the waiting long jobs twice in a row, so a stream of small
requests cannot starve a large one: under load, short and long batches alternate.

So a 2 MB request is cut into batches that alternate with the other requests', and a one-sentence request that
arrives meanwhile waits for the batch running (at most one long batch), then runs in a short batch.

Each batch is handed to the predictor from a worker thread, not the event loop's, and up to ``concurrency`` batches
run at once: the server's predictor runs them in model processes of their own (:mod:`.worker`), so probes, new
requests and signals are served between and during batches. Each request's records are put back in its order,
whichever of its batches ends first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


Records = list[dict[str, Any]]


class QueueFull(Exception):
    """A request would take the queue over ``max_queue`` sentences: shed it (503) rather than queue it forever."""


@dataclass(eq=False)
class Job:
    """One request's sentences on their way through the model: taken in pieces, answered with the last piece."""

    sentences: list[list[str]]
    future: asyncio.Future[Records]
    arrived: float  # loop time
    short: bool  # it fits in one batch
    records: list[dict[str, Any]] = field(init=False)  # by sentence; filled as its batches end
    taken: int = 0  # sentences [0, taken) are in a batch already
    answered: int = 0  # sentences with their record

    def __post_init__(self) -> None:
        self.records = [{}] * len(self.sentences)

    @property
    def left(self) -> int:
        return len(self.sentences) - self.taken


def model_threads(count: int = 1) -> ThreadPoolExecutor:
    """The threads that hand batches to the model and wait for their records, off the event loop's thread: one per
    batch that may run at once."""
    return ThreadPoolExecutor(count, "model")


class Batcher:
    """Forms batches of the queued sentences (see the module) and runs them through ``predictor`` in ``executor``,
    ``concurrency`` at a time (``executor`` needs as many threads, and ``predictor`` must take as many calls at once).

    A batch waits at most ``timeout`` seconds (from its oldest sentence's arrival) for more sentences when fewer
    than the idle slots' share of ``max_batch_size`` are queued (all of it with every slot idle).
    ``on_batch(sentences, tokens, seconds)`` is told of every batch run."""

    def __init__(
        self,
        predictor: Callable[[list[list[str]]], Records],
        max_batch_size: int = 32,
        timeout: float = 0.01,
        max_batch_tokens: int = 8192,
        max_queue: int = 4096,
        executor: ThreadPoolExecutor | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.predictor, self.max_batch_size, self.timeout = predictor, max_batch_size, timeout
        self.max_batch_tokens, self.max_queue, self.concurrency = max_batch_tokens, max_queue, concurrency
        self.executor = executor or model_threads(concurrency)
        self.on_batch = on_batch or (lambda sentences, tokens, seconds: None)
        self.jobs: list[Job] = []
        self.arrival = asyncio.Event()
        self.batch_sizes: Counter[int] = Counter()
        self.requests = self.sentences = 0
        self.in_flight = 0  # requests received and not yet answered
        self.busy_s = 0.0  # time spent in the predictor, summed over the batches run at once
        self.running: list[list[Job]] = []  # each batch being run: the jobs whose sentences are in it
        self.short_passed_long = False  # the last batch was of short jobs while long ones waited
        self.idle = concurrency  # slots free for a batch
        self.slot_freed = asyncio.Event()

    @property
    def queued(self) -> int:
        """Sentences waiting for a batch (of requests still waiting for their answer)."""
        return sum(job.left for job in self.jobs if not job.future.done())

    async def predict(self, sentences: list[list[str]], timeout: float | None = None) -> Records:
        """The records of ``sentences``; ``TimeoutError`` past ``timeout`` seconds (the sentences not yet run are
        dropped), :class:`QueueFull` when the queue has no room for them."""
        if self.queued + len(sentences) > self.max_queue:
            raise QueueFull(f"this request's {len(sentences)} sentence(s) would take the queue from {self.queued} to "
                            f"{self.queued + len(sentences)}, past --max-queue {self.max_queue}")  # fmt: skip
        loop = asyncio.get_running_loop()
        short = len(sentences) <= self.max_batch_size and sum(map(len, sentences)) <= self.max_batch_tokens
        job = Job(sentences, loop.create_future(), loop.time(), short)
        self.jobs.append(job)
        self.arrival.set()
        self.in_flight += 1
        try:
            return await asyncio.wait_for(job.future, timeout)  # on timeout, cancels the future: the job is skipped
        finally:
            self.in_flight -= 1

    def fail_pending(self, error: Exception) -> int:
        """Answer every request still waiting with ``error`` (its batches still queued are dropped); how many."""
        waiting = [job for job in self.jobs if not job.future.done()]
        waiting += [job for jobs in self.running for job in jobs if not job.future.done() and job not in waiting]
        for job in waiting:
            job.future.set_exception(error)
        return len(waiting)

    async def run(self) -> None:
        """Form batches and run up to ``concurrency`` at once, until cancelled; a failing batch fails its requests,
        not the server. The sentences queued are shared between the idle slots, so that 32 one-sentence requests
        become two batches of 16 on two idle model processes, not one of 32 while the other waits."""
        loop = asyncio.get_running_loop()
        batches: set[asyncio.Task[None]] = set()

        def done(batch: asyncio.Task[None]) -> None:
            batches.discard(batch)
            self.idle += 1
            self.slot_freed.set()

        try:
            while True:
                while not self.idle:
                    self.slot_freed.clear()
                    await self.slot_freed.wait()
                await self._gather(loop)
                share = math.ceil(self.queued / self.idle)
                for _ in range(self.idle):
                    pieces = self._take(min(share, self.max_batch_size))
                    if not pieces:
                        break
                    self.idle -= 1
                    batch = loop.create_task(self._run_batch(loop, pieces))
                    batches.add(batch)
                    batch.add_done_callback(done)
        finally:
            for batch in batches:
                batch.cancel()

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, pieces: list[tuple[Job, int, int]]) -> None:
        flat = [sentence for job, start, stop in pieces for sentence in job.sentences[start:stop]]
        jobs = [job for job, _, _ in pieces]
        self.running.append(jobs)
        started = loop.time()
        try:
            records = await loop.run_in_executor(self.executor, self.predictor, flat)
        except Exception as error:  # noqa: BLE001  (reported to each waiting request)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            seconds = loop.time() - started
            self.busy_s += seconds
            self.running.remove(jobs)
        self._count(pieces, flat, seconds)
        self._answer(pieces, records)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the idle slots' share of a full batch is queued (all of it when every slot is idle), or the
        oldest queued sentence has waited ``timeout``."""
        while True:
            waiting = [job for job in self.jobs if not job.future.done()]
            self.arrival.clear()
            if waiting:
                full = sum(job.left for job in waiting) >= self.idle * self.max_batch_size / self.concurrency
                left = min(job.arrived for job in waiting) + self.timeout - loop.time()
                if full or left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrival.wait(), left)
            else:
                await self.arrival.wait()

    def _take(self, most: int) -> list[tuple[Job, int, int]]:
        """The next batch of at most ``most`` sentences, as (job, first sentence, end) pieces (see the module for the
        order)."""
        # a job answered already (its deadline passed) is dropped, with its sentences not run yet
        waiting = [job for job in self.jobs if not job.future.done()]
        short = [job for job in waiting if job.short]
        long = [job for job in waiting if not job.short]
        if short and (not long or not self.short_passed_long):
            order, self.short_passed_long = short, bool(long)
        else:
            order, self.short_passed_long = long + short, False
        pieces: list[tuple[Job, int, int]] = []
        size = tokens = 0
        for job in order:
            stop = job.taken
            while stop < len(job.sentences) and size < most:
                length = len(job.sentences[stop])
                if size and tokens + length > self.max_batch_tokens:  # a longer sentence than that goes alone
                    break
                size, tokens, stop = size + 1, tokens + length, stop + 1
            if stop > job.taken:
                pieces.append((job, job.taken, stop))
                job.taken = stop
            if size >= most or tokens >= self.max_batch_tokens:
                break
        ran = {job for job, _, _ in pieces}  # to the back of the queue: the other requests' turn
        self.jobs = [job for job in waiting if job not in ran] + [job for job, _, _ in pieces if job.left]
        return pieces

    def _count(self, pieces: list[tuple[Job, int, int]], flat: list[list[str]], seconds: float) -> None:
        self.batch_sizes[len(flat)] += 1
        self.requests += sum(1 for job, start, _ in pieces if start == 0)
        self.sentences += len(flat)
        self.on_batch(len(flat), sum(map(len, flat)), seconds)

    @staticmethod
    def _answer(pieces: list[tuple[Job, int, int]], records: Records) -> None:
        start = 0
        for job, first, stop in pieces:
            job.records[first:stop] = records[start : start + stop - first]
            start += stop - first
            job.answered += stop - first
            if job.answered == len(job.sentences) and not job.future.done():
                job.future.set_result(job.records)
