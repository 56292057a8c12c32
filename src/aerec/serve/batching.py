"""Micro-batching: concurrent requests share one forward pass.

Requests wait on an asyncio queue. A single worker task takes the first one, then everything
already queued, then waits up to ``max_wait`` seconds for more, up to ``max_rows`` in all, and
scores the batch on one worker thread (so the event loop keeps accepting requests while torch
runs, and torch never runs two batches at once). Under load, requests that arrive while a batch
is being scored form the next batch, so batching grows with the load on its own; an idle
service adds at most ``max_wait`` to a request. If a batch fails, its queries are scored again
one by one, so a query that cannot be answered fails alone and the rest of its batch succeeds.
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
            queries = [q for q, _ in live]
            try:
                results = await self._loop.run_in_executor(self._executor, self.engine.run, queries)
            except Exception as e:  # the worker lives on; only the queries that fail alone get an error
                if len(live) == 1:
                    log.error("scoring a query failed: %s: %s", type(e).__name__, e)
                    results = [e]
                else:
                    log.warning("a batch of %d failed (%s: %s); scoring its queries one by one",
                                len(live), type(e).__name__, e)
                    results = await self._loop.run_in_executor(self._executor, self._one_by_one, queries)
            self.batches += 1
            self.requests += len(live)
            for (_, fut), r in zip(live, results):
                if fut.done():
                    continue
                if isinstance(r, Exception):
                    fut.set_exception(r)
                else:
                    fut.set_result(r)

    def _one_by_one(self, queries: list) -> list:
        """Each query alone (after its batch failed): a result or the exception it raises."""
        out = []
        for q in queries:
            try:
                out.append(self.engine.run([q])[0])
            except Exception as e:
                out.append(e)
        return out

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
