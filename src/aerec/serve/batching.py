"""Micro-batching: concurrent requests share one forward pass.

Requests wait on an asyncio queue. A single worker task takes the first one, then everything
already queued, then waits up to ``max_wait`` seconds for more, up to ``max_rows`` in all, and
scores the batch on one worker thread (so the event loop keeps accepting requests while torch
runs, and torch never runs two batches at once). Under load, requests that arrive while a batch
is being scored form the next batch, so batching grows with the load on its own; an idle
service adds at most ``max_wait`` to a request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

log = logging.getLogger("aerec.serve")


class MicroBatcher:
    def __init__(self, engine, max_rows: int = 64, max_wait: float = 0.002):
        if max_rows < 1 or max_wait < 0:
            raise ValueError("max_rows must be >= 1 and max_wait >= 0")
        self.engine, self.max_rows, self.max_wait = engine, int(max_rows), float(max_wait)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aerec-score")
        self._loop = self._queue = self._task = None
        self.batches = 0  # forward rounds run (a round is one or two model calls, see Engine.score)
        self.requests = 0  # queries answered through batches

    def _start(self) -> None:
        # (re)bound to the running loop: a test client or a server restart brings a new one
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._worker(), name="aerec-batcher")

    async def submit(self, query):
        """Recommendations for one query, scored together with whatever else is waiting."""
        self._start()
        fut = self._loop.create_future()
        await self._queue.put((query, fut))
        return await fut

    async def _collect(self) -> list:
        batch = [await self._queue.get()]
        deadline = self._loop.time() + self.max_wait
        while len(batch) < self.max_rows:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - self._loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _worker(self) -> None:
        while True:
            batch = await self._collect()
            live = [(q, f) for q, f in batch if not f.done()]  # a client that went away is skipped
            if not live:
                continue
            try:
                results = await self._loop.run_in_executor(self._executor, self.engine.run, [q for q, _ in live])
            except Exception as e:  # scoring failed: every waiting request gets the error, the worker lives on
                log.exception("scoring a batch of %d failed", len(live))
                results = [e] * len(live)
            self.batches += 1
            self.requests += len(live)
            for (_, fut), r in zip(live, results):
                if fut.done():
                    continue
                if isinstance(r, Exception):
                    fut.set_exception(r)
                else:
                    fut.set_result(r)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
