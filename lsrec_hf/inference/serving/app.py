"""The HTTP endpoints of `lsrec serve`, over the "recommendation" pipeline and `lsrec_hf.inference.user_state`.

FastAPI gives the OpenAPI schema (`/docs`, `/openapi.json`) and request validation from the pydantic models below;
LitServe would add a dependency for batching we can do in a few lines (`batching.py`).
Scoring is the pipeline's; user states are `user_state.fold_in`'s; this file only translates HTTP.
"""

import asyncio
import contextlib
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from ...model.retrieval import check_retrieval, item_index
from ...processing.tokens import to_tokens
from ..user_state import fold_in
from .batching import MicroBatcher
from .metrics import Metrics
from .store import UserStore

Item = StrictStr | StrictInt  # an item id or a title; no floats or booleans passed off as ids
UserId = Annotated[str, Path(min_length=1, max_length=128, description="any string up to 128 characters")]


class ServeError(Exception):
    """A request the server understood but cannot serve: its status, where the bad field is, and why."""

    def __init__(self, status, loc, message):
        super().__init__(message)
        self.status, self.loc, self.message = status, loc, message


def _request_models(max_history, max_candidates, max_top_k):
    """The request bodies, with the limits this server was started with."""

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: list[Item] | None = Field(None, max_length=max_history, description=(
            "item ids or titles, oldest first; with user_id, the events since the stored state (not stored)"))
        user_id: StrictStr | None = Field(None, min_length=1, max_length=128,
                                          description="a user stored through POST /users/{id}/events")
        top_k: StrictInt = Field(10, ge=1, le=max_top_k)
        candidates: list[Item] | None = Field(None, min_length=1, max_length=max_candidates)
        exclude_history: StrictBool = True
        explain: StrictBool = False
        scenario: StrictStr | None = Field(None, min_length=1, max_length=128, description=(
            "where the items will be shown: a value of the model's scenario feature (config.scenario_feature)"))
        now: float | None = Field(None, allow_inf_nan=False, description=(
            "the moment of the request in unix seconds, for a model with a trend prior (default: just after the "
            "last event the prior knows)"))

        @model_validator(mode="after")
        def _history_or_user(self):
            if self.user_id is None and not self.history:
                raise ValueError("history: give a non-empty history (item ids or titles), or a stored user_id")
            return self

    class EventsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[Item] = Field(min_length=1, max_length=max_history,
                                  description="the user's new events (item ids or titles), oldest first")

    return RecommendRequest, EventsRequest


class RecommendedItem(BaseModel):
    item_id: str
    title: str | None
    score: float
    explanation: dict[str, Any] | None = None


class Recommendations(BaseModel):
    items: list[RecommendedItem]


class User(BaseModel):
    user_id: str
    num_events: int = Field(description="events acknowledged for this user, all durable")
    history: list[str] = Field(description="the latest item ids, oldest first (up to `limit`)")
    events_in_memory: int = Field(description="events the state holds as long memory")
    events_in_tokens: int = Field(description="events the state holds as tokens (the short segment and after)")


def _field_of(message):
    """`["body", "history", 3]` from the pipeline's "history[3]: unknown item ..." (the field its message names)."""
    match = re.match(r"(\w+)(?:\[(\d+)\])?", message)
    if not match:
        return ["body"]
    return ["body", match.group(1)] + ([int(match.group(2))] if match.group(2) else [])


def _check_scenario(config, scenario):
    """A 422 naming `scenario` when the model has no scenario feature, or has never seen this value."""
    feature = config.scenario_feature
    if feature is None:
        raise ServeError(422, ["body", "scenario"], "scenario: this model was trained without a scenario feature "
                                                    "(config.scenario_feature); leave scenario out")
    known = config.context_vocab[feature]
    if scenario not in known:
        # the pipeline would score it as an unknown scenario: over HTTP a typo is likelier than a new scenario
        values = ", ".join(map(repr, known[:50])) + (f" and {len(known) - 50} more" if len(known) > 50 else "")
        raise ServeError(422, ["body", "scenario"], f"scenario: unknown {feature} {scenario!r}; this model knows "
                                                    f"{values}")


def create_app(pipe, state_dir, max_history=10_000, max_candidates=10_000, max_top_k=1000, max_body_bytes=4_000_000,
               max_wait=0.005, max_batch=32, retrieval="exact"):
    """The FastAPI app serving `pipe` (a "recommendation" pipeline), with user states under `state_dir`.

    `max_history` bounds a history and the events of one POST; `max_body_bytes` a request body (413 beyond).
    Requests are micro-batched for up to `max_wait` seconds, `max_batch` at a time. `retrieval` is the pipeline's:
    `"faiss"` searches the model's faiss index (built here, before the first request) instead of scoring every item.
    """
    RecommendRequest, EventsRequest = _request_models(max_history, max_candidates, max_top_k)
    model = pipe.lsrec_model
    catalog = model.catalog
    if check_retrieval(retrieval) == "faiss":
        item_index(model)  # seconds on a 1M-item catalog: paid at startup, not by the first request
    store = UserStore(state_dir)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lsrec-model")  # the one thread using the model
    metrics = Metrics()

    def score(histories, options):
        with warnings.catch_warnings():  # fewer than top_k left after the exclusion: the response shows it
            warnings.simplefilter("ignore")
            return pipe(histories, retrieval=retrieval, **options)

    batcher = MicroBatcher(score, executor, max_wait=max_wait, max_batch=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        executor.shutdown(wait=True)
        store.close()

    app = FastAPI(lifespan=lifespan, title="lsrec_hf recommender", version="1",
                  description="Next-item recommendations from an LSRec model, with user states kept across restarts.")
    app.state.store, app.state.batcher, app.state.metrics = store, batcher, metrics

    @app.exception_handler(ServeError)
    async def _serve_error(request, error):
        return JSONResponse(status_code=error.status, content={"detail": [
            {"loc": error.loc, "msg": error.message}]})

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            response = JSONResponse(status_code=413, content={"detail": [
                {"loc": ["body"], "msg": f"body: the request body is over this server's limit of {max_body_bytes} "
                                         f"bytes (lsrec serve --max-body-bytes)"}]})
        else:
            try:
                response = await call_next(request)
            except Exception as error:  # noqa: BLE001 - a bug must cost one request, never the server
                response = JSONResponse(status_code=500, content={"detail": [{"loc": [], "msg": repr(error)[:500]}]})
        route = request.scope.get("route")
        metrics.observe(request.method, route.path if route else "other", response.status_code,
                        time.perf_counter() - start)
        return response

    def resolve(items, field):
        """Catalog indices of `items`, or a 422 naming the bad one (the pipeline's own lookup and message)."""
        try:
            return pipe._indices(items, field)
        except ValueError as error:
            raise ServeError(422, _field_of(str(error)), str(error)) from None

    async def on_model_thread(function, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    @app.post("/recommend", response_model=Recommendations)
    async def recommend(body: RecommendRequest):
        """The top-k next items for a history, or for a stored user (plus the events since, if any)."""
        history = [catalog.item_ids[i] for i in resolve(body.history or [], "history")]
        options = {"top_k": body.top_k, "exclude_history": body.exclude_history, "explain": body.explain}
        if body.candidates is not None:
            options["candidates"] = tuple(catalog.item_ids[i] for i in resolve(body.candidates, "candidates"))
        if body.scenario is not None:
            _check_scenario(model.config, body.scenario)
            options["scenario"] = body.scenario
        if body.now is not None:
            options["now"] = body.now
        if body.user_id is None:
            items = await batcher.submit(history, tuple(sorted(options.items())))
        else:  # one user's state: the pipeline reads it alone (memory is one user's)
            stored = await on_model_thread(store.get, body.user_id)
            if stored is None:
                raise ServeError(404, ["body", "user_id"],
                                 f"user_id: no stored user {body.user_id!r}; post its events first")
            try:
                items = await on_model_thread(lambda: score(history, {**options, "memory": stored[0]}))
            except ValueError as error:
                raise ServeError(422, _field_of(str(error)), str(error)) from None
        return {"items": items}

    def add_events(user_id, indices):
        stored = store.get(user_id)
        state, before = stored if stored is not None else (store.empty_state(), 0)
        state = fold_in(model, state, to_tokens(indices)).to("cpu")
        store.commit(user_id, state, [catalog.item_ids[i] for i in indices], before)
        return before + len(indices)

    @app.post("/users/{user_id}/events")
    async def post_events(user_id: UserId, body: EventsRequest):
        """Fold new events into the user's stored state (one segment's cost); durable when this returns 200."""
        indices = resolve(body.items, "items")
        num_events = await on_model_thread(add_events, user_id, indices)
        return {"user_id": user_id, "acknowledged": len(indices), "num_events": num_events}

    @app.get("/users/{user_id}", response_model=User)
    async def get_user(user_id: UserId, limit: Annotated[int, Query(ge=1, le=1_000_000)] = 1000):
        """A stored user's event count, latest events and how its state holds them."""
        stored = await on_model_thread(store.get, user_id)
        if stored is None:
            raise ServeError(404, ["path", "user_id"], f"user_id: no stored user {user_id!r}")
        state, num_events = stored
        in_memory = int(state.memory.long_count.sum()) if state.memory is not None else 0
        return {"user_id": user_id, "num_events": num_events, "history": store.history(user_id, limit),
                "events_in_memory": in_memory, "events_in_tokens": len(state.tokens)}

    @app.get("/health")
    async def health():
        return {"status": "ok", "items": len(catalog), "model_type": model.config.model_type, "retrieval": retrieval}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def get_metrics():
        return metrics.render(batcher.batch_sizes, batcher.calls)

    return app
