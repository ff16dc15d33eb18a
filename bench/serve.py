"""Load test of `lsrec serve` on localhost: throughput, latency and lost events at 1, 16 and 64 concurrent clients.

    python bench/serve.py                                      # ML-100K, then 1,000,000 items with faiss
    python bench/serve.py --servers synthetic --num_items 100000 --requests 400 --levels 1 8

Each server is the real `lsrec serve` in a subprocess on a free port, the model on `--threads` threads:
  * ml-100k: the main job's model (`--model`), or, when it is not there, recipes/pretrain.py with its defaults for
    `--epochs` epochs (the main job's model size and cost; its accuracy does not matter here); the histories of the
    real test users (leave-one-out), sent whole;
  * synthetic: bench/retrieval.py's catalog of `--num_items` items (Zipf popularity, clustered text embeddings,
    hidden 64, 2 layers), served with `--retrieval faiss` (the default IVF index, built at startup); histories of
    20 items drawn by popularity.
At each level of `--levels` (concurrent clients: httpx, asyncio, one user each) the clients share `--requests`
requests, stopping early at `--time_cap` seconds: every fourth posts 1 to 3 items of a history to
POST /users/{id}/events, the others POST /recommend with a history (top 10). After the level, GET /users/{id} of
every client's user must hold each acknowledged event, in order. The clients run in this process, on the same CPUs
as the server: the CPU each process used during a level is recorded beside the figures.
Prints a markdown table, writes bench/results/serve.json.
"""

import argparse
import asyncio
import contextlib
import gc
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

import httpx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, ml100k_model, write_result  # noqa: E402
from retrieval import histories as popular_histories, set_bias_to_popularity, synthetic_model  # noqa: E402

from lsrec_hf import ItemCatalog  # noqa: E402
from lsrec_hf.data import load_data  # noqa: E402
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out  # noqa: E402
from lsrec_hf.processing.tokens import to_indices  # noqa: E402

EVENTS_EVERY = 4  # one request in 4 posts events; the others ask for recommendations


def ml100k_histories():
    """The item ids of every ML-100K test user's history (leave-one-out), oldest first."""
    data = load_data("ml-100k")
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    return [[data.catalog.item_ids[i] for i in history] for history in splits.test.histories]


def save_synthetic_model(path, num_items, num_users, seed):
    """bench/retrieval.py's synthetic model, with a catalog (ids i0, i1, ...), saved to `path`; its users' histories."""
    model, popularity = synthetic_model(num_items, content_dim=384, num_topics=1000, seed=seed)
    users = popular_histories(popularity, num_users, torch.Generator().manual_seed(seed + 1))
    set_bias_to_popularity(model, popularity, users[:64])
    item_ids = [f"i{n}" for n in range(num_items)]
    model.catalog = ItemCatalog(item_ids, [""] * num_items, [""] * num_items)
    model.save_pretrained(path)
    return [[item_ids[i] for i in to_indices(row).tolist()] for row in users]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(model_dir, flags, threads, work_dir, startup_timeout):
    """`(base url, startup seconds, pid)` of `lsrec serve` on `model_dir`, stopped on exit; its log in `work_dir`."""
    port = _free_port()
    command = [sys.executable, "-m", "lsrec_hf.inference.cli", "serve", "--model", model_dir, "--port", str(port),
               "--state-dir", os.path.join(work_dir, "state"), "--device", "cpu", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    log_path = os.path.join(work_dir, "server.log")
    print(f"[serve] {' '.join(command)}", flush=True)
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started, url = time.perf_counter(), f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                with open(log_path) as log:
                    raise SystemExit(f"the server exited with {server.returncode}:\n{log.read()[-4000:]}")
            if time.perf_counter() - started > startup_timeout:
                raise SystemExit(f"the server did not answer /health within {startup_timeout} s (see {log_path})")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, time.perf_counter() - started, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def percentile_ms(seconds, q):
    """The nearest-rank `q`-th percentile of `seconds`, in milliseconds (None without any)."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_calls(metrics_text):
    line = next(line for line in metrics_text.splitlines() if line.startswith("lsrec_pipeline_calls_total "))
    return int(line.split()[1])


async def load_level(url, pid, name, clients, requests, time_cap, histories):
    """One level: `clients` concurrent clients sharing `requests` requests; then the lost-events check."""
    users = [f"{name}-{clients}-{k}" for k in range(clients)]
    acknowledged = {user: [] for user in users}
    latencies = {"recommend": [], "events": []}
    errors = Counter()
    indices = iter(range(requests))  # shared: the clients together send `requests`
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        calls_before = pipeline_calls((await client.get("/metrics")).text)
        deadline = time.perf_counter() + time_cap

        async def one_client(user):
            for i in indices:
                if time.perf_counter() > deadline:
                    return
                history = histories[(i * 7919) % len(histories)]  # a fixed, scattered order of the users
                if i % EVENTS_EVERY == EVENTS_EVERY - 1:
                    kind, items = "events", history[-(1 + i % 3):]
                    request = client.post(f"/users/{user}/events", json={"items": items})
                else:
                    kind, request = "recommend", client.post("/recommend", json={"history": history, "top_k": 10})
                start = time.perf_counter()
                try:
                    response = await request
                except httpx.HTTPError as error:  # no answer: counted, never acknowledged
                    errors[type(error).__name__] += 1
                    continue
                latencies[kind].append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors[f"HTTP {response.status_code}"] += 1
                elif kind == "events":
                    acknowledged[user] += items

        started, client_cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(pid)
        await asyncio.gather(*(one_client(user) for user in users))
        seconds = time.perf_counter() - started
        # both share the machine's CPUs: what each used says which one the level was bound by
        client_cpu = time.process_time() - client_cpu
        server_cpu = cpu_seconds(pid) - server_cpu if server_cpu is not None else None
        recommends = len(latencies["recommend"])
        calls = pipeline_calls((await client.get("/metrics")).text) - calls_before
        found, in_order = 0, True
        for user, events in acknowledged.items():
            if not events:
                continue
            response = await client.get(f"/users/{user}", params={"limit": 1_000_000})
            stored = response.json()["history"] if response.status_code == 200 else []
            found += sum((Counter(events) & Counter(stored)).values())
            in_order = in_order and stored == events
    completed = recommends + len(latencies["events"])
    every = latencies["recommend"] + latencies["events"]
    return {"server": name, "clients": clients, "requests": requests, "completed": completed,
            "capped": completed + sum(errors.values()) < requests, "seconds": seconds,
            "requests_per_s": completed / seconds, "p50_ms": percentile_ms(every, 50),
            "p99_ms": percentile_ms(every, 99),
            "by_route": {kind: {"count": len(values), "p50_ms": percentile_ms(values, 50),
                                "p99_ms": percentile_ms(values, 99)} for kind, values in latencies.items()},
            "errors": sum(errors.values()), "errors_by_kind": dict(errors),
            "mean_batch": recommends / calls if calls else None,
            "client_cpu_share": client_cpu / seconds,
            "server_cpu_share": server_cpu / seconds if server_cpu is not None else None,
            "events_acknowledged": sum(map(len, acknowledged.values())), "events_found": found,
            "events_in_order": in_order}


async def load_test(url, pid, name, args, histories):
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for history in histories[:5]:  # warm-up, not timed
            (await client.post("/recommend", json={"history": history})).raise_for_status()
    rows = []
    for clients in args.levels:
        rows.append(await load_level(url, pid, name, clients, args.requests, args.time_cap, histories))
        row = rows[-1]
        print(f"[serve] {name}, {clients} clients: {row['requests_per_s']:.1f} req/s, p50 {row['p50_ms']:.1f} ms, "
              f"p99 {row['p99_ms']:.1f} ms, {row['errors']} errors, events {row['events_found']}/"
              f"{row['events_acknowledged']}", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", nargs="+", choices=["ml-100k", "synthetic"], default=["ml-100k", "synthetic"])
    parser.add_argument("--model", default="outputs/lsrec-ml-100k", help="the main job's ML-100K model")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs when --model is not there")
    parser.add_argument("--num_items", type=int, default=1_000_000, help="the synthetic catalog's size")
    parser.add_argument("--num_users", type=int, default=1024, help="synthetic users (histories to send)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64], help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests per level")
    parser.add_argument("--time_cap", type=float, default=60.0, help="seconds per level at most")
    parser.add_argument("--startup_timeout", type=float, default=600.0, help="seconds for a server to answer /health")
    parser.add_argument("--threads", type=int, default=1, help="the server's threads (OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "serve.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    servers, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="lsrec-bench-serve-") as tmp:
        for name in args.servers:
            work_dir = os.path.join(tmp, name)
            os.makedirs(work_dir)
            started = time.perf_counter()
            if name == "ml-100k":
                model_dir = ml100k_model(args.model, os.path.join(work_dir, "model"), args.epochs, args.threads)
                histories, flags = ml100k_histories(), []
                servers[name] = {"model": args.model if model_dir == args.model else
                                 f"recipes/pretrain.py defaults, {args.epochs} epochs", "retrieval": "exact"}
            else:
                model_dir = os.path.join(work_dir, "model")
                histories = save_synthetic_model(model_dir, args.num_items, args.num_users, args.seed)
                gc.collect()  # the model's 1.5 GB of text embeddings: the server loads its own copy
                flags = ["--retrieval", "faiss"]
                servers[name] = {"model": "bench/retrieval.py synthetic (hidden 64, 2 layers)", "retrieval": "faiss"}
            servers[name]["prepare_seconds"] = time.perf_counter() - started
            with served(model_dir, flags, args.threads, work_dir, args.startup_timeout) as (url, startup_seconds, pid):
                health = httpx.get(f"{url}/health").json()
                servers[name].update(num_items=health["items"], startup_seconds=startup_seconds,
                                     mean_history=sum(map(len, histories)) / len(histories))
                print(f"[serve] {name}: {health['items']:,} items, up in {startup_seconds:.0f} s", flush=True)
                rows += asyncio.run(load_test(url, pid, name, args, histories))

    print(f"\n{args.requests} requests per level (1 in {EVENTS_EVERY} posts events), server on {args.threads} "
          f"thread(s), clients on the same machine\n")
    print("| server | items | retrieval | clients | req/s | p50 ms | p99 ms | errors | events acked / found | "
          "mean batch | server CPU | client CPU |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for row in rows:
        server = servers[row["server"]]
        capped = f" (capped at {args.time_cap:.0f} s: {row['completed']} done)" if row["capped"] else ""
        order = "" if row["events_in_order"] else " (out of order)"
        server_cpu = "—" if row["server_cpu_share"] is None else f"{row['server_cpu_share']:.2f}"
        print(f"| {row['server']} | {server['num_items']:,} | {server['retrieval']} | {row['clients']} | "
              f"{row['requests_per_s']:.1f}{capped} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} | "
              f"{row['events_acknowledged']} / {row['events_found']}{order} | {row['mean_batch'] or 0:.1f} | "
              f"{server_cpu} | {row['client_cpu_share']:.2f} |")
    print("\n(mean batch: /recommend requests per pipeline call; CPU: cores busy on average during the level)")
    write_result(args.out, {"servers": servers, "levels": args.levels, "requests_per_level": args.requests,
                            "time_cap_seconds": args.time_cap, "events_every": EVENTS_EVERY,
                            "server_threads": args.threads, "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
