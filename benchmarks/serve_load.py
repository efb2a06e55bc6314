"""Load-test `seqmodels-serve` on the loopback interface: throughput, latency, batch sizes, nothing lost; large
requests beside small ones; SIGTERM under load.

    python benchmarks/serve_load.py CHECKPOINT --data-dir ../shared/data [--requests 5000] [--clients 1 8 32]
        [--phases load mixed fault]

Starts the server (127.0.0.1 only) and runs the phases asked for (`load` by default) from aiohttp clients in this
process (`client_cpu_share` in each phase's JSON line: the CPU they take from the server on the same cores):

- `load`, per number of `--clients`: `--requests` requests, single sentences (`--singles`, 70%) and batches of 2-8
  from the UD and SST test files (or `--inputs`: CoNLL-U, or a sentence per line), `--malformed` of them broken.
  `--singles 1 --malformed 0` is a plain client's load: one sentence per request. Each answer must
  equal the offline record (`Predictor`, what `seqmodels-predict` writes; probabilities within 1e-5), each broken
  one get a 4xx; throughput against the offline predictor's, timed just before and just after the phase (the median of
  three passes each).
- `mixed`: `--large-clients` send 2 MB requests (256 sentences of 1,000 tokens) back to back beside 8 clients of
  `--requests` single sentences and a `/health` probe every 50 ms: their latency, also in units of one large
  batch's forward pass (`large_batch_ms`: `--max-batch-tokens` // 1,000 sentences, timed on the server first).
- `fault` (it stops the server): `--fault-clients` send requests back to back, SIGTERM once half of `--requests`
  are answered, each client stops at a refused connection: answered, 503, refused (never sent), reset (sent,
  then cut off: must be 0), and the exit status.

Prints one JSON line per phase, then a table of the load phases; exits 1 if anything was lost, different or reset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import httpx

from seqmodels.data.readers.common import sentence_blocks, tokenize
from seqmodels.data.readers.conll import conllu_word
from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor

OFFLINE_PASSES = 3  # offline passes timed before and after each load phase; their median counts
MALFORMED = [
    (b"{not json", "application/json"),
    (b'{"txt": "a missing field"}', "application/json"),
    (b'{"sentences": []}', "application/json"),
    (b'{"tokens": "not a list"}', "application/json"),
    (json.dumps({"sentences": ["too many"] * 300}).encode(), "application/json"),
]


def read_sentences(path: Path) -> list[list[str]]:
    """CoNLL-U files' word forms, or one sentence per line (``label text`` lines lose their label)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".conllu":
        numbered = enumerate(lines, start=1)
        blocks = sentence_blocks(numbered)
        return [[f[1] for n, line in block if (f := conllu_word(f"{path}:{n}", line))] for block in blocks]
    return [tokenize(line)[1:] if path.name.startswith("stsa.") else tokenize(line) for line in lines if line.strip()]


def requests_for(
    sentences: list[list[str]], count: int, malformed: float, seed: int, singles: float = 0.7
) -> list[dict]:
    """``count`` requests: each a single sentence (``singles``), a batch of 2-8 (the rest), or broken
    (``malformed``)."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        if rng.random() < malformed:
            body, kind = rng.choice(MALFORMED)
            made.append({"body": body, "type": kind, "expect": None})
        elif rng.random() < singles:
            sentence = rng.choice(sentences)
            made.append({"body": json.dumps({"tokens": sentence}).encode(), "type": "application/json",
                         "expect": [sentence], "single": True})  # fmt: skip
        else:
            chosen = [rng.choice(sentences) for _ in range(rng.randint(2, 8))]
            made.append({"body": json.dumps({"sentences": chosen}).encode(), "type": "application/json",
                         "expect": chosen, "single": False})  # fmt: skip
    return made


def same(answer: dict, expected: dict) -> bool:
    """Tags, labels and tokens equal; probabilities within 1e-5 (batching may round the last digit otherwise)."""
    if answer.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if key in ("tag_probs", "label_probs"):
            pairs = zip(value.values(), answer[key].values()) if isinstance(value, dict) else zip(value, answer[key])
            if len(answer[key]) != len(value) or any(abs(a - b) > 1e-5 for a, b in pairs):
                return False
        elif answer[key] != value:
            return False
    return True


async def phase(url: str, requests: list[dict], clients: int, offline: dict, seconds: float) -> dict:
    """Send ``requests`` from ``clients`` concurrent clients and time them; then check every answer (after the
    clock stops, so the checking does not take CPU from the server it measures)."""
    queue: asyncio.Queue = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    answered: list[tuple[dict, int, bytes]] = []
    latencies, lost = [], 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal lost
        while not queue.empty() and time.perf_counter() < deadline:
            request = queue.get_nowait()
            start = time.perf_counter()
            try:
                headers = {"content-type": request["type"]}
                async with session.post(url, data=request["body"], headers=headers) as response:
                    answered.append((request, response.status, await response.read()))
            except aiohttp.ClientError:
                lost += 1
                continue
            latencies.append(time.perf_counter() - start)

    start, cpu = time.perf_counter(), time.process_time()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu  # the clients' CPU time: the server's loss

    counts = {"ok": 0, "differing": 0, "lost": lost, "rejected": 0, "wrongly_accepted": 0, "sentences": 0, "tokens": 0}
    for request, status, body in answered:
        if request["expect"] is None:
            good = 400 <= status < 500 and set(json.loads(body)) == {"error"}
            counts["rejected" if good else "wrongly_accepted"] += 1
            continue
        if status != 200:
            counts["lost"] += 1
            continue
        answers = [json.loads(body)] if request["single"] else json.loads(body)
        expected = [{"tokens": s, **offline[tuple(s)]} for s in request["expect"]]
        counts["ok" if len(answers) == len(expected) and all(map(same, answers, expected)) else "differing"] += 1
        counts["sentences"] += len(expected)
        counts["tokens"] += sum(len(s) for s in request["expect"])
    counts["unsent"] = queue.qsize()
    return counts | {
        "phase": "load", "clients": clients, "requests": len(requests) - queue.qsize(), "wall_s": round(wall, 2),
        "client_cpu_share": round(cpu / wall, 2),
        "sentences_per_s": round(counts["sentences"] / wall, 1), "tokens_per_s": round(counts["tokens"] / wall),
    } | percentiles(latencies, "", (50, 95, 99))  # fmt: skip


def percentiles(seconds: list[float], prefix: str, which: tuple[int, ...] = (50, 99)) -> dict:
    """``{prefix}p50_ms`` ... of ``seconds``."""
    cuts = statistics.quantiles(seconds, n=100) if len(seconds) > 1 else [0.0] * 99
    return {f"{prefix}p{q}_ms": round(1000 * cuts[q - 1], 1) for q in which}


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[str, float]:
    """POST a JSON body: its fate ("200", "503", ..., "refused": never sent, "reset": sent, then cut off) and time."""
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
            await response.read()
            return str(response.status), time.perf_counter() - start
    except aiohttp.ClientConnectorError:
        return "refused", time.perf_counter() - start
    except aiohttp.ClientError:
        return "reset", time.perf_counter() - start


async def mixed_phase(base: str, sentences: list[list[str]], small: int, large_clients: int) -> dict:
    """2 MB requests back to back beside ``small`` one-sentence requests (8 clients) and a /health probe; their
    latency in units of one large batch's forward pass, timed on the server beforehand (alone, 3 times
    after a warm-up)."""
    words = [word for sentence in sentences for word in sentence]
    large = [(words * 2)[i * 1000 % len(words) :][:1000] for i in range(256)]
    queue = [json.dumps({"tokens": s}).encode() for s in random.Random(0).choices(sentences, k=small)]
    fates: dict[str, list] = {"small": [], "large": [], "probe": []}

    async def stats(session: aiohttp.ClientSession) -> dict:
        async with session.get(f"{base}/stats") as response:
            return await response.json()

    async def client(kind: str, session: aiohttp.ClientSession) -> None:
        while queue if kind == "small" else len(fates["small"]) < small:
            if kind == "probe":
                await asyncio.sleep(0.05)
                start = time.perf_counter()
                async with session.get(f"{base}/health") as response:
                    fates[kind].append((str(response.status), time.perf_counter() - start))
                continue
            fates[kind].append(await post(session, f"{base}/predict", queue.pop() if kind == "small" else body))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async with session.get(f"{base}/info") as response:
            serving = (await response.json())["serving"]
        per_batch = max(1, min(serving["max_batch_size"], serving["max_batch_tokens"] // 1000))
        one_batch = json.dumps({"sentences": large[:per_batch]}).encode()
        await post(session, f"{base}/predict", one_batch)  # untimed: oneDNN builds its kernels for a new shape
        before = await stats(session)
        for _ in range(3):
            await post(session, f"{base}/predict", one_batch)
        after = await stats(session)
        batches = sum(after["batch_sizes"].values()) - sum(before["batch_sizes"].values())
        batch_s = (after["busy_s"] - before["busy_s"]) / batches
        body, start, cpu = json.dumps({"sentences": large}).encode(), time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(kind, session) for kind in ["large"] * large_clients + ["small"] * 8 + ["probe"]))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {"phase": "mixed", "large_clients": large_clients, "large_bytes": len(body), "wall_s": round(wall, 2),
              "client_cpu_share": round(cpu / wall, 2), "large_batch_sentences": per_batch,
              "large_batch_ms": round(1000 * batch_s, 1)}  # fmt: skip
    for kind, done in fates.items():
        ok = sum(fate == "200" for fate, _ in done)
        result |= {f"{kind}_ok": ok, f"{kind}_failed": len(done) - ok}
        result |= percentiles([seconds for _, seconds in done], f"{kind}_")
        if kind != "large":
            result[f"{kind}_p99_in_batches"] = round(result[f"{kind}_p99_ms"] / result["large_batch_ms"], 2)
    return result


async def fault_phase(base: str, server: subprocess.Popen, requests: list[dict], clients: int) -> dict:
    """``clients`` clients back to back; SIGTERM once half of ``requests`` are answered; each client stops when a
    connection is refused (the server has stopped accepting)."""
    bodies, counts = iter([request["body"] for request in requests] * 100), {"200": 0, "refused": 0, "reset": 0}

    async def client(session: aiohttp.ClientSession) -> None:
        while (fate := (await post(session, f"{base}/predict", next(bodies)))[0]) != "refused":
            counts[fate] = counts.get(fate, 0) + 1
        counts["refused"] += 1

    start, cpu = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        while counts["200"] < len(requests) // 2 and not all(task.done() for task in tasks):
            await asyncio.sleep(0.01)
        server.send_signal(signal.SIGTERM)
        sigterm = time.perf_counter()
        await asyncio.gather(*tasks)
    exit_status = await asyncio.to_thread(server.wait, 120)
    return {"phase": "fault", "clients": clients, "answered": counts.pop("200"), "shed_503": counts.pop("503", 0),
            "refused": counts.pop("refused"), "reset": counts.pop("reset"), "other": counts, "exit_status": exit_status,
            "drain_s": round(time.perf_counter() - sigterm, 2),
            "client_cpu_share": round((time.process_time() - cpu) / (time.perf_counter() - start), 2)}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    checkpoint: str | Path, options: Sequence[str] = (), log: Path | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """``seqmodels-serve CHECKPOINT OPTIONS`` on a free loopback port, once ready; its stderr in ``log`` when given
    (tests/test_server_faults.py starts its servers with this too)."""
    port = free_port()
    command = [sys.executable, "-m", "seqmodels.inference.server.cli", str(checkpoint), "--host", "127.0.0.1",
               "--port", str(port), *options]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w") if log else None, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    return server, base
            except httpx.HTTPError:
                time.sleep(0.1)
    except BaseException:  # interrupted while the server loads: it stops too
        server.kill()
        raise
    server.kill()
    said = log.read_text() if log else ""
    raise SystemExit(f"serve_load.py: error: the server was not ready within 2 minutes {said}")


def offline_pass(predictor: Predictor, sentences: list[list[str]]) -> tuple[list[dict], float]:
    """The records of ``sentences`` predicted in batches of 32 in their order, as the server's batches come, and
    the tokens per second."""
    start = time.perf_counter()
    records = [record for i in range(0, len(sentences), 32) for record in predictor(sentences[i : i + 32])]
    return records, sum(map(len, sentences)) / (time.perf_counter() - start)


def offline_speed(predictor: Predictor, sentences: list[list[str]], passes: int = OFFLINE_PASSES) -> float:
    """The median tokens/s of ``passes`` offline passes: one pass of a few seconds varied by up to 25% from the
    next on this 2-core VM."""
    return statistics.median(offline_pass(predictor, sentences)[1] for _ in range(passes))


def load_phases(
    base: str, args: argparse.Namespace, sentences: list, offline: dict, predictor: Predictor
) -> list[dict]:
    """The ``load`` phase at each number of clients, with the batches that formed and the ratio to offline: to the
    mean of the offline speeds measured just before and just after the phase (each the median of three passes),
    since this machine's speed drifts (offline passes a few minutes apart differ by up to 30% on a shared 2-core
    VM)."""
    warmup = requests_for(sentences, args.requests, 0.0, -1, args.singles)  # untimed: the server's kernels warm up
    asyncio.run(phase(f"{base}/predict", warmup, max(args.clients), offline, args.seconds))
    rows = []
    for clients in args.clients:
        offline_before = offline_speed(predictor, sentences)
        before = httpx.get(f"{base}/stats").json()
        requests = requests_for(sentences, args.requests, args.malformed, clients, args.singles)
        result = asyncio.run(phase(f"{base}/predict", requests, clients, offline, args.seconds))
        after = httpx.get(f"{base}/stats").json()
        busy_s = (after["busy_s"] - before["busy_s"]) / after["model_processes"]  # per model process
        result["model_busy_share"] = round(busy_s / result["wall_s"], 2)
        counts = {size: n - before["batch_sizes"].get(size, 0) for size, n in after["batch_sizes"].items()}
        formed = {size: n for size, n in counts.items() if n}
        result["batch_sizes"] = formed
        result["mean_batch"] = round(sum(int(s) * n for s, n in formed.items()) / max(1, sum(formed.values())), 2)
        offline_speeds = [offline_before, offline_speed(predictor, sentences)]
        result["offline_tokens_per_s"] = [round(speed) for speed in offline_speeds]  # before and after
        result["ratio_to_offline"] = round(result["tokens_per_s"] / statistics.mean(offline_speeds), 3)
        print(json.dumps(result), flush=True)
        rows.append(result)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--inputs", nargs="*", type=Path, help="default: the UD and SST test files in --data-dir")
    parser.add_argument("--phases", nargs="+", choices=("load", "mixed", "fault"), default=["load"])
    parser.add_argument("--requests", type=int, default=5000, help="per phase")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="the load phases' clients")
    parser.add_argument("--large-clients", type=int, default=2, help="the mixed phase's clients of 2 MB requests")
    parser.add_argument("--fault-clients", type=int, default=32)
    parser.add_argument("--malformed", type=float, default=0.05)
    parser.add_argument("--singles", type=float, default=0.7,
                        help="the share of requests of one sentence (1: a plain client's; the rest 2-8)")
    parser.add_argument("--seconds", type=float, default=300, help="at most, per load phase")
    parser.add_argument("--server", nargs=argparse.REMAINDER, default=[], help="more seqmodels-serve options")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a run killed with SIGTERM still stops its server
    data = Path(args.data_dir)
    inputs = args.inputs or [data / "ud_english_ewt" / "en_ewt-ud-test.conllu", data / "sst2" / "stsa.binary.test"]
    sentences = [s for path in inputs for s in read_sentences(path) if s]

    predictor = Predictor(load_model(args.checkpoint))  # the offline reference
    records = offline_pass(predictor, sentences)[0]  # also warms up oneDNN, which builds its kernels once per shape
    offline = {tuple(s): r for s, r in zip(sentences, records)}

    server, base = start_server(args.checkpoint, args.server)
    rows, failed = [], False
    try:
        if "load" in args.phases:
            rows = load_phases(base, args, sentences, offline, predictor)
            failed = any(r["lost"] or r["differing"] or r["wrongly_accepted"] for r in rows)
        if "mixed" in args.phases:
            mixed = asyncio.run(mixed_phase(base, sentences, args.requests, args.large_clients))
            print(json.dumps(mixed), flush=True)
            failed |= bool(mixed["small_failed"] or mixed["large_failed"] or mixed["probe_failed"])
        if "fault" in args.phases:  # last: it stops the server
            fault = asyncio.run(fault_phase(base, server, requests_for(sentences, args.requests, 0.0, seed=0),
                                            args.fault_clients))  # fmt: skip
            print(json.dumps(fault), flush=True)
            failed |= bool(fault["reset"] or fault["other"] or fault["exit_status"])
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\n{'clients':>7} {'sent/s':>8} {'tokens/s':>9} {'x offline':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'batch':>6} {'ok':>6} {'lost':>5} {'differ':>6} {'4xx':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['clients']:>7} {r['sentences_per_s']:>8} {r['tokens_per_s']:>9} {r['ratio_to_offline']:>9} "
              f"{r['p50_ms']:>7} {r['p95_ms']:>7} {r['p99_ms']:>7} {r['mean_batch']:>6} {r['ok']:>6} {r['lost']:>5} "
              f"{r['differing']:>6} {r['rejected']:>5}")  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
