"""Micro-batching: recommendation requests that arrive within a few milliseconds share one pipeline call.

The pipeline already scores several histories in one forward (left-padded); this queue only gathers them. Requests
are grouped by their options (top_k, exclude_history, candidates, explain, scenario), since one call takes one set of
options.
"""

import asyncio


class MicroBatcher:
    """Gathers `submit`ted requests for up to `max_wait` seconds (or `max_batch` of them) and runs `score` once per
    group of requests with the same options.

    `score(histories, options)` runs in `executor` (the one thread that touches the model) and returns one result per
    history. When a group fails (one bad history fails the whole call), its requests are retried one by one, so only
    the bad request gets the error.
    """

    def __init__(self, score, executor, max_wait=0.005, max_batch=32):
        self.score, self.executor = score, executor
        self.max_wait, self.max_batch = max_wait, max_batch
        self.calls = 0  # pipeline calls made, for /metrics and the tests
        self.batch_sizes = []  # requests per call, the latest 1000
        self._queue = None
        self._worker = None
        self._loop = None

    async def submit(self, history, options):
        """The pipeline's result for `history` with `options` (a hashable tuple of keyword items)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:  # started in this loop, on first use
            self._queue, self._loop = asyncio.Queue(), loop
            self._worker = loop.create_task(self._run())
        future = loop.create_future()
        await self._queue.put((history, options, future))
        return await future

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            groups = {}
            for request in batch:
                groups.setdefault(request[1], []).append(request)
            for options, requests in groups.items():
                await self._score_group(loop, options, requests)

    async def _score_group(self, loop, options, requests):
        try:
            results = await self._call(loop, [history for history, _, _ in requests], options)
        except Exception as error:  # noqa: BLE001 - retried one by one below, or handed to the one request
            if len(requests) == 1:
                _settle(requests[0][2], error=error)
                return
            for request in requests:
                await self._score_group(loop, options, [request])
            return
        for (_, _, future), result in zip(requests, results):
            _settle(future, result=result)

    async def _call(self, loop, histories, options):
        self.calls += 1
        self.batch_sizes = (self.batch_sizes + [len(histories)])[-1000:]
        return await loop.run_in_executor(self.executor, self.score, histories, dict(options))


def _settle(future, result=None, error=None):
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
