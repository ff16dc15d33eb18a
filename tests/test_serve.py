"""`lsrec serve`: every endpoint on a tiny real model, bad requests, micro-batching, and a kill -9 during writes."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from transformers import pipeline

import lsrec_hf  # noqa: F401 - registers the "recommendation" task
from lsrec_hf.inference import pipeline_recommendation
from lsrec_hf.processing.tokens import to_tokens
from lsrec_hf.inference.serving import create_app
from lsrec_hf.inference.user_state import UserState, encode_user, fold_in

from conftest import ROOT, save_tiny_model

TITLES = [f"Movie {i} ({1990 + i % 10})" for i in range(30)]
SCENARIOS = ["home", "search", "shelf"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("serve") / "model"), TITLES)


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline("recommendation", model=model_dir)


@pytest.fixture(scope="module")
def scenario_pipe(tmp_path_factory):
    """The tiny model with a scenario feature: a target-scenario embedding per scenario."""
    path = save_tiny_model(str(tmp_path_factory.mktemp("serve") / "scenario-model"), TITLES,
                           context_vocab={"scenario": SCENARIOS}, scenario_feature="scenario")
    return pipeline("recommendation", model=path)


@pytest.fixture
def client(pipe, tmp_path):
    with TestClient(create_app(pipe, str(tmp_path / "state"), max_history=50, max_wait=0.05)) as client:
        yield client


def tokens(item_ids):
    return to_tokens([int(item[1:]) for item in item_ids])


def same_items(served, expected):
    assert [item["item_id"] for item in served] == [item["item_id"] for item in expected]
    assert [item["score"] for item in served] == pytest.approx([item["score"] for item in expected], abs=1e-5)


def test_recommend_returns_the_pipelines_items_for_ids_titles_and_candidates(client, pipe):
    response = client.post("/recommend", json={"history": ["m1", "Movie 2 (1992)", "movie 3 (1993)", "m4"], "top_k": 5})
    assert response.status_code == 200
    same_items(response.json()["items"], pipe(["m1", "m2", "m3", "m4"], top_k=5))
    body = {"history": ["m1", "m2"], "candidates": ["m1", "m7", "m8"], "exclude_history": False, "top_k": 3}
    items = client.post("/recommend", json=body).json()["items"]
    same_items(items, pipe(["m1", "m2"], candidates=["m1", "m7", "m8"], exclude_history=False, top_k=3))
    assert {item["item_id"] for item in items} == {"m1", "m7", "m8"}


def test_recommend_at_a_moment_ranks_what_trended_then(model_dir, tmp_path):
    from lsrec_hf.model.trend_prior import DAY, TrendPrior

    model = lsrec_hf.LSRecForSequentialRecommendation.from_pretrained(model_dir)
    # m1 played on days 2 and 3, m2 on day 10: a weight that outweighs the model puts each first in its days
    model.trend_prior = TrendPrior([1, 1, 2], [2 * DAY, 3 * DAY, 10 * DAY], len(TITLES), window=3 * DAY, weight=100.0)
    trending = pipeline("recommendation", model=model)
    with TestClient(create_app(trending, str(tmp_path / "state"), max_history=50, max_wait=0.05)) as client:
        for now, first in ((4 * DAY, "m1"), (11 * DAY, "m2")):
            items = client.post("/recommend", json={"history": ["m5"], "top_k": 3, "now": now}).json()["items"]
            assert items[0]["item_id"] == first
            same_items(items, trending(["m5"], top_k=3, now=now))
        assert client.post("/recommend", json={"history": ["m5"], "now": "soon"}).status_code == 422


def test_recommend_explains_on_request(client):
    items = client.post("/recommend", json={"history": ["m1", "m2", "m3"], "top_k": 2, "explain": True}).json()["items"]
    assert len(items) == 2
    assert {"drivers", "long_term_share", "reason"} <= set(items[0]["explanation"])


def test_events_fold_into_the_stored_state_and_serve_from_it(client, pipe):
    posts = [["m1", "m2", "m3"], ["Movie 4 (1994)"], ["m5", "m6", "m7", "m8", "m9"]]
    for items in posts:
        response = client.post("/users/alice/events", json={"items": items})
        assert response.status_code == 200 and response.json()["acknowledged"] == len(items)
    history = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]
    user = client.get("/users/alice").json()
    assert user["num_events"] == 9 and user["history"] == history
    assert user["events_in_memory"] + user["events_in_tokens"] == 9 and user["events_in_memory"] > 0
    # the same folds, done directly: the served state is user_state.fold_in's, post by post
    state = UserState(torch.zeros(0, dtype=torch.long))
    for items in [["m1", "m2", "m3"], ["m4"], ["m5", "m6", "m7", "m8", "m9"]]:
        state = fold_in(pipe.lsrec_model, state, tokens(items))
    served = client.post("/recommend", json={"user_id": "alice", "top_k": 4}).json()["items"]
    same_items(served, pipe([], memory=state, top_k=4))
    served = client.post("/recommend", json={"user_id": "alice", "history": ["m10"], "top_k": 4}).json()["items"]
    same_items(served, pipe(["m10"], memory=state, top_k=4))
    assert client.get("/users/alice?limit=2").json()["history"] == ["m8", "m9"]


def test_stored_users_survive_a_restart(pipe, tmp_path):
    with TestClient(create_app(pipe, str(tmp_path / "state"))) as client:
        client.post("/users/bob/events", json={"items": ["m1", "m2", "m3", "m4", "m5", "m6"]})
        before = client.post("/recommend", json={"user_id": "bob"}).json()
    with TestClient(create_app(pipe, str(tmp_path / "state"))) as client:
        assert client.get("/users/bob").json()["num_events"] == 6
        assert client.post("/recommend", json={"user_id": "bob"}).json() == before


BAD_REQUESTS = [
    # (path, raw body or json, status, a field the message names)
    ("/recommend", '{"history": ["m1", ', 422, "json"),
    ("/recommend", "not json at all", 422, "json"),
    ("/recommend", {"history": []}, 422, "history"),
    ("/recommend", {}, 422, "history"),
    ("/recommend", {"history": ["m1"] * 51}, 422, "history"),
    ("/recommend", {"history": ["m1", "no such movie"]}, 422, "history"),
    ("/recommend", {"history": "m1"}, 422, "history"),
    ("/recommend", {"history": ["m1", 2.5]}, 422, "history"),
    ("/recommend", {"history": ["m1", True]}, 422, "history"),
    ("/recommend", {"history": ["m1", None]}, 422, "history"),
    ("/recommend", {"history": [["m1"]]}, 422, "history"),
    ("/recommend", {"history": ["m1"], "top_k": 0}, 422, "top_k"),
    ("/recommend", {"history": ["m1"], "top_k": "3"}, 422, "top_k"),
    ("/recommend", {"history": ["m1"], "top_k": 10**30}, 422, "top_k"),
    ("/recommend", {"history": ["m1"], "candidates": ["m2", "zzz"]}, 422, "candidates"),
    ("/recommend", {"history": ["m1"], "candidates": []}, 422, "candidates"),
    ("/recommend", {"history": ["m1"], "exclude_history": "yes"}, 422, "exclude_history"),
    ("/recommend", {"history": ["m1"], "explain": 1}, 422, "explain"),
    ("/recommend", {"history": ["m1"], "scores": True}, 422, "scores"),
    ("/recommend", {"history": ["m1"], "scenario": 3}, 422, "scenario"),
    ("/recommend", {"history": ["m1"], "scenario": ""}, 422, "scenario"),
    ("/recommend", {"user_id": "nobody"}, 404, "user_id"),
    ("/recommend", {"user_id": 7}, 422, "user_id"),
    ("/recommend", [1, 2, 3], 422, "body"),
    ("/users/carol/events", {"items": []}, 422, "items"),
    ("/users/carol/events", {"items": ["m1", "ghost"]}, 422, "items"),
    ("/users/carol/events", {"items": ["m1"] * 51}, 422, "items"),
    ("/users/carol/events", {"item": ["m1"]}, 422, "items"),
    ("/users/" + "x" * 200 + "/events", {"items": ["m1"]}, 422, "user_id"),
]


@pytest.mark.parametrize("path, body, status, field", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_naming_the_field(client, path, body, status, field):
    if isinstance(body, str):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert field in json.dumps(response.json()["detail"]), response.text
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/users/carol").status_code == 404  # nothing of a bad POST was stored


def test_a_body_over_the_size_limit_gets_413(pipe, tmp_path):
    with TestClient(create_app(pipe, str(tmp_path / "state"), max_body_bytes=100)) as client:
        response = client.post("/recommend", json={"history": ["m1"] * 40})
        assert response.status_code == 413 and "body" in response.text
        assert client.get("/health").status_code == 200


def test_concurrent_requests_share_a_pipeline_call_and_match_one_by_one(pipe, tmp_path):
    app = create_app(pipe, str(tmp_path / "state"), max_wait=0.2, max_batch=16)
    bodies = [{"history": [f"m{(3 * u + t) % 30}" for t in range(1 + u % 7)], "top_k": 5} for u in range(12)]
    bodies[3] = {"history": ["m1", "m2"], "top_k": 5, "explain": True}  # other options: a group of its own
    bodies[5] = {"history": ["m1", "unknown"], "top_k": 5}  # fails alone, the others still get theirs

    async def post_all():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/recommend", json=body) for body in bodies))

    responses = asyncio.run(post_all())
    assert responses[5].status_code == 422 and "history" in responses[5].text
    for body, response in zip(bodies, responses):
        if body is not bodies[5]:
            assert response.status_code == 200
            expected = pipe(body["history"], top_k=5, explain=body.get("explain", False))
            same_items(response.json()["items"], expected)
    assert max(app.state.batcher.batch_sizes) >= 10  # the 11 plain requests: one call (plus retries after the bad one)


def test_recommend_for_a_scenario_matches_the_pipeline_and_batches_each_scenario_apart(scenario_pipe, tmp_path):
    app = create_app(scenario_pipe, str(tmp_path / "state"), max_wait=0.2, max_batch=16)
    histories = [["m1", "m2", "m3", "m4", "m5"], ["m7", "m8"]]
    options = {"top_k": 30, "exclude_history": False}
    bodies = [{"history": history, **options, "scenario": scenario} for scenario in SCENARIOS for history in histories]
    bodies.append({"history": histories[0], **options})  # no scenario: unknown, a group of its own

    async def post_all():  # within one micro-batch window
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/recommend", json=body) for body in bodies))

    responses = asyncio.run(post_all())
    for body, response in zip(bodies, responses):
        assert response.status_code == 200, response.text
        same_items(response.json()["items"], scenario_pipe(body["history"], **options, scenario=body.get("scenario")))
    assert sorted(app.state.batcher.batch_sizes) == [1, 2, 2, 2]  # one pipeline call per scenario
    scores = [{item["item_id"]: item["score"] for item in responses[i].json()["items"]} for i in (0, 2, 4, 6)]
    assert all(a != b for i, a in enumerate(scores) for b in scores[i + 1:])  # each scenario scores differently

    with TestClient(app) as client:  # a stored user's state, read for a scenario
        client.post("/users/ann/events", json={"items": histories[0]})
        served = client.post("/recommend", json={"user_id": "ann", "scenario": "search", "top_k": 5}).json()
    state = encode_user(scenario_pipe.lsrec_model, tokens(histories[0]))
    same_items(served["items"], scenario_pipe([], memory=state, scenario="search", top_k=5))


def test_an_unknown_scenario_gets_a_422_listing_the_known_ones(scenario_pipe, tmp_path):
    with TestClient(create_app(scenario_pipe, str(tmp_path / "state"))) as client:
        response = client.post("/recommend", json={"history": ["m1"], "scenario": "billboard"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "scenario"] and "'billboard'" in error["msg"]
    assert all(repr(scenario) in error["msg"] for scenario in SCENARIOS), error["msg"]


def test_a_scenario_for_a_model_without_a_scenario_feature_gets_a_422(client):
    response = client.post("/recommend", json={"history": ["m1"], "scenario": "home"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "scenario"] and "without a scenario feature" in error["msg"]


def test_faiss_retrieval_searches_the_index_built_at_startup(pipe, tmp_path, monkeypatch):
    searches = []
    search = pipeline_recommendation.retrieve
    monkeypatch.setattr(pipeline_recommendation, "retrieve", lambda *args, **kwargs: searches.append(1) or search(
        *args, **kwargs))
    with TestClient(create_app(pipe, str(tmp_path / "state"), retrieval="faiss")) as client:
        assert client.get("/health").json()["retrieval"] == "faiss"
        items = client.post("/recommend", json={"history": ["m1", "m2", "m3"], "top_k": 5}).json()["items"]
    assert searches == [1]
    same_items(items, pipe(["m1", "m2", "m3"], top_k=5))  # 30 items: a "Flat" index, exact
    with pytest.raises(ValueError, match="retrieval must be one of"):
        create_app(pipe, str(tmp_path / "state"), retrieval="annoy")


def test_metrics_count_requests_and_latency_buckets(client):
    client.post("/recommend", json={"history": ["m1"]})
    client.post("/recommend", json={"history": []})
    text = client.get("/metrics").text
    assert 'lsrec_requests_total{method="POST",route="/recommend",status="200"} 1' in text
    assert 'lsrec_requests_total{method="POST",route="/recommend",status="422"} 1' in text
    assert 'lsrec_request_seconds_bucket{route="/recommend",le="+Inf"} 2' in text
    assert "lsrec_pipeline_calls_total 1" in text


def test_the_openapi_schema_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/users/{user_id}/events", "/users/{user_id}", "/health", "/metrics"} <= set(paths)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model_dir, state_dir, port):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "lsrec_hf.inference.cli", "serve", "--model", model_dir, "--state-dir", state_dir,
               "--port", str(port), "--device", "cpu"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stderr.read().decode()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("the server did not start within 60 s")


def test_kill_9_during_writes_loses_no_acknowledged_event(model_dir, tmp_path):
    state_dir, port = str(tmp_path / "state"), _free_port()
    server = _start_server(model_dir, state_dir, port)
    acknowledged = {"u1": [], "u2": []}
    stop = threading.Event()

    def write(user):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            step = 0
            while not stop.is_set():
                items = [f"m{(step * 7 + j) % 30}" for j in range(1 + step % 3)]
                try:
                    response = client.post(f"/users/{user}/events", json={"items": items})
                except httpx.TransportError:  # killed: this event is not acknowledged
                    return
                if response.status_code == 200:
                    acknowledged[user] += items
                step += 1

    writers = [threading.Thread(target=write, args=(user,)) for user in acknowledged]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 20
        while sum(map(len, acknowledged.values())) < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)  # while both writers are mid-request
        server.wait()
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert all(acknowledged.values()), "no event was acknowledged before the kill"

    server = _start_server(model_dir, state_dir, port)
    try:
        for user, events in acknowledged.items():
            found = httpx.get(f"http://127.0.0.1:{port}/users/{user}?limit=100000").json()
            # every acknowledged event, in order; at most the one POST the kill cut off after its commit on top
            assert found["history"][:len(events)] == events
            assert len(found["history"]) - len(events) <= 3
            assert found["num_events"] == len(found["history"])
            assert found["events_in_memory"] + found["events_in_tokens"] == found["num_events"]
            print(f"{user}: {len(events)} events acknowledged, {found['num_events']} found after kill -9 and restart")
        # the restarted server takes new events on top
        response = httpx.post(f"http://127.0.0.1:{port}/users/u2/events", json={"items": ["m1"]})
        assert response.status_code == 200 and response.json()["num_events"] == found["num_events"] + 1
    finally:
        server.kill()
        server.wait()
