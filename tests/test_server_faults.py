"""The real seqmodels-serve (a subprocess, uvicorn) under faults and load: SIGTERM under 32 clients and 8 large
requests resets no connection and exits 0 (503 past --drain-timeout), a probe and a one-sentence request are answered
while a 2 MB request runs, a request head over 1 MiB gets a 400, a small load test loses nothing, and the demo page
in a real (headless) Chromium shows every head as /predict answers."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import pytest
import serve_load
from test_server import ROOT, trained_checkpoint

from seqmodels.inference.server.errors import MAX_HEAD_BYTES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return trained_checkpoint(tmp_path_factory)


def start_server(checkpoint: Path, log: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """``seqmodels-serve CHECKPOINT OPTIONS`` on a free port, one torch thread, its log in ``log``, once ready."""
    return serve_load.start_server(checkpoint, options, log, env=os.environ | {"OMP_NUM_THREADS": "1"})


LARGE = {"sentences": [" ".join(["the film was dull"] * 75)] * 64}  # 64 sentences of 300 tokens: 8 batches of 8
JSON = {"content-type": "application/json"}


def in_flight(base: str, requests: int) -> None:
    """Wait until ``requests`` requests are in the server (a fixed sleep loses the race on a loaded machine)."""
    for _ in range(600):
        if f"seqmodels_in_flight_requests {requests}.0" in httpx.get(f"{base}/metrics", timeout=30).text:
            return
        time.sleep(0.05)
    raise AssertionError(f"the {requests} requests did not all reach the server within 30 s")


async def clients_until_refused(base: str, server: subprocess.Popen, clients: int, large: int) -> dict:
    """``large`` clients send LARGE once, ``clients`` clients send small requests back to back; SIGTERM once the
    large ones are in the server and 100 small ones are answered; each client stops when its connection is refused
    or its large request is answered. Returns how many requests ended how: a status, "refused" (never sent) or
    the error that cut a request off after it was sent."""
    counts: dict[str, int] = {}
    small = json.dumps({"sentences": ["the film was not dull .", "a fine cast"]}).encode()

    async def client(session: aiohttp.ClientSession, body: bytes, once: bool) -> None:
        while True:
            try:
                async with session.post(f"{base}/predict", data=body, headers=JSON) as response:
                    await response.read()
                    fate = str(response.status)
            except aiohttp.ClientConnectorError:
                fate = "refused"
            except aiohttp.ClientError as error:
                fate = f"{type(error).__name__}: {error}"
            counts[fate] = counts.get(fate, 0) + 1
            if once or fate == "refused":
                return

    connector, timeout = aiohttp.TCPConnector(limit=0), aiohttp.ClientTimeout(120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session, json.dumps(LARGE).encode(), once=True)) for _ in range(large)]
        await asyncio.to_thread(in_flight, base, large)
        tasks += [asyncio.create_task(client(session, small, once=False)) for _ in range(clients)]
        while counts.get("200", 0) < 100:
            await asyncio.sleep(0.01)
        server.send_signal(signal.SIGTERM)
        await asyncio.gather(*tasks)
    return counts


def test_sigterm_under_32_clients_and_8_large_requests_answers_every_request_sent_resets_none_and_exits_0(
    checkpoint, tmp_path
):
    server, base = start_server(checkpoint, tmp_path / "server.log", "--max-batch-size", "8")
    counts = asyncio.run(clients_until_refused(base, server, clients=32, large=8))
    assert server.wait(timeout=60) == 0
    assert set(counts) == {"200", "refused"}, counts  # nothing reset or cut off: every request sent was answered
    assert counts["refused"] == 32 and counts["200"] >= 108  # then no connection was accepted
    log = (tmp_path / "server.log").read_text()
    # OMP_NUM_THREADS=1: one thread in all, so one model process
    assert f"on {base}; backend torch on cpu, model processes 1, torch threads 1 each, workers 1 (this one pid " \
        f"{server.pid})" in log  # fmt: skip


def test_past_the_drain_timeout_the_requests_still_unanswered_get_503_and_the_log_says_how_many(checkpoint, tmp_path):
    server, base = start_server(checkpoint, tmp_path / "server.log", "--max-batch-size", "8", "--drain-timeout", "0.2")
    with ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(httpx.post, f"{base}/predict", json=LARGE, timeout=120) for _ in range(8)]
        in_flight(base, 8)
        server.send_signal(signal.SIGTERM)
        answers = [future.result() for future in pending]  # a reset would raise here
    assert server.wait(timeout=60) == 0
    late = [answer.json() for answer in answers if answer.status_code != 200]
    assert late and late == [{"error": "draining: not answered within --drain-timeout 0.2 s"}] * len(late)
    assert all(len(answer.json()) == 64 for answer in answers if answer.status_code == 200)
    log = (tmp_path / "server.log").read_text()
    assert f"drain: {len(late)} requests not answered within --drain-timeout 0.2 s got a 503" in log
    assert f"stopped: {len(late)} requests got a 503 past --drain-timeout" in log
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/health", timeout=1)


@pytest.fixture(scope="module")
def served(checkpoint, tmp_path_factory):
    """One server for the tests that leave it running."""
    server, base = start_server(checkpoint, tmp_path_factory.mktemp("served") / "server.log")
    yield base
    server.terminate()
    server.wait(timeout=60)


def metric(base: str, name: str) -> float:
    lines = httpx.get(f"{base}/metrics").text.splitlines()
    return next(float(line.split()[-1]) for line in lines if line.startswith(name))


def test_a_hung_model_process_does_not_keep_the_server_from_exiting(checkpoint, tmp_path):
    """A model process stopped in a batch (SIGSTOP): its request gets the drain's 503, and the server still exits 0,
    the child with it (the interpreter's exit used to wait for the child's call forever)."""
    server, base = start_server(checkpoint, tmp_path / "server.log", "--drain-timeout", "1")
    model = httpx.get(f"{base}/stats", timeout=30).json()["model_pids"][0]
    os.kill(model, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{base}/predict", json={"text": "a"}, timeout=120)
            in_flight(base, 1)
            server.send_signal(signal.SIGTERM)
            assert pending.result().status_code == 503
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        if running(model):
            os.kill(model, signal.SIGKILL)
    for _ in range(100):
        if not running(model):
            return
        time.sleep(0.1)
    raise AssertionError("the stopped model process outlived the server")


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (exists and is not a zombie)."""
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_server_killed_with_sigkill_leaves_no_model_process_behind(checkpoint, tmp_path):
    """The model's process (and with it the fork server) exits once the server has gone, whatever stopped it."""
    server, base = start_server(checkpoint, tmp_path / "serve.log")
    models = httpx.get(f"{base}/stats", timeout=30).json()["model_pids"]
    assert models and None not in models  # one per model process (two by default, on two cores or more)
    server.kill()
    server.wait(30)
    for _ in range(100):
        if not any(map(running, models)):
            return
        time.sleep(0.1)
    for pid in filter(running, models):
        os.kill(pid, signal.SIGKILL)
    raise AssertionError("a model's process was still running 10 s after the server was killed")


def test_a_probe_and_a_one_sentence_request_are_answered_while_a_2mb_request_runs(served):
    sentence = " ".join(["the film was dull and long ."] * 143).split()[:1000]
    body = json.dumps({"sentences": [sentence] * 256}).encode()  # 256 sentences of 1,000 tokens
    assert 1.8e6 < len(body) < 2.5e6
    before = metric(served, "seqmodels_sentences_total")
    with ThreadPoolExecutor(1) as pool:
        large = pool.submit(httpx.post, f"{served}/predict", content=body, headers=JSON, timeout=600)
        for _ in range(600):
            if metric(served, "seqmodels_sentences_total") > before:  # its first batch has run
                break
            time.sleep(0.05)
        probe = httpx.get(f"{served}/health", timeout=600)
        small = httpx.post(f"{served}/predict", json={"text": "a fine cast"}, timeout=600)
        predicted = metric(served, "seqmodels_sentences_total") - before  # the one sentence and the large one's so far
        assert large.result().status_code == 200 and len(large.result().json()) == 256
    assert probe.status_code == small.status_code == 200
    assert predicted < 256  # both were answered between the large request's batches, not after the last one


def raw_request(base: str, head: bytes) -> bytes:
    """Send ``head`` (a request line and headers, then the blank line) on a new connection; all of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(head + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_a_request_head_over_1_mib_gets_a_400_and_the_server_keeps_answering(served):
    assert MAX_HEAD_BYTES == 2**20  # the 1 MiB the docs give
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    assert raw_request(served, request + b"X-Long: " + b"a" * 100_000 + b"\r\n").startswith(b"HTTP/1.1 200")
    refused = raw_request(served, request + b"X-Long: " + b"a" * 2 * MAX_HEAD_BYTES + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 400")
    assert refused.endswith(f"Request line and headers over {MAX_HEAD_BYTES} bytes.".encode())
    assert httpx.get(f"{served}/health", timeout=60).status_code == 200


def test_a_small_load_test_loses_nothing_and_every_answer_equals_the_offline_record(checkpoint, tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(["the plot was not dull .", "i loved that score", "the cast plays well ."] * 20))
    command = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), str(checkpoint), "--inputs", str(text),
               "--requests", "150", "--clients", "8"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    phase = next(json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"ok"'))
    assert phase["lost"] == phase["differing"] == phase["wrongly_accepted"] == phase["unsent"] == 0
    assert phase["ok"] + phase["rejected"] == 150 and phase["rejected"] > 0 and phase["mean_batch"] > 1


def chromium() -> tuple[str, str] | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    return found if all(found) else None


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_demo_page_in_a_real_browser_shows_every_head_as_predict_answers(served, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser_path, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,700"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(served)
        driver.find_element(By.ID, "text").send_keys("The plot was not dull.")
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 30).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#result[data-ready]")))
        heads = [e.get_attribute("data-head") for e in driver.find_elements(By.CSS_SELECTOR, "#result .head")]
        shown_tokens = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-head=tagger] .chip .word")]
        chips = driver.find_elements(By.CSS_SELECTOR, "[data-head=tagger] .chip")
        shown_tags = [chip.get_attribute("data-value") for chip in chips]
        shown_label = driver.find_element(By.CSS_SELECTOR, "[data-head=classifier]").get_attribute("data-value")
        bars = {e.get_attribute("data-class"): e.rect["width"]
                for e in driver.find_elements(By.CSS_SELECTOR, "[data-head=classifier] .bar")}  # fmt: skip
        full = driver.execute_script("return parseFloat(getComputedStyle(document.documentElement).fontSize) * 20")
        driver.save_screenshot(str(tmp_path / "demo.png"))
    finally:
        driver.quit()
    expected = httpx.post(f"{served}/predict", json={"text": "The plot was not dull."}).json()
    assert heads == list(httpx.get(f"{served}/info").json()["heads"])  # every head the model has, from /info
    assert shown_tokens == expected["tokens"] and shown_tags == expected["tags"] and shown_label == expected["label"]
    assert bars.keys() == expected["label_probs"].keys()
    assert all(abs(bars[label] - p * full) <= 1 for label, p in expected["label_probs"].items())  # to the pixel
    assert (tmp_path / "demo.png").stat().st_size > 10_000
