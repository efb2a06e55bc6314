"""seqmodels-serve: the records seqmodels-predict writes, batched; bad requests get one-line 4xx; SIGTERM finishes
what is in flight; a small load test loses nothing; the demo page in a real (headless) Chromium."""

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

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from seqmodels.backends import load_predictor
from seqmodels.cli import main
from seqmodels.server import Batcher, Settings, create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The default multitask model (tags and a label), trained for a few epochs on a small synthetic corpus."""
    root = tmp_path_factory.mktemp("serve")
    main(["fit", "--config", str(ROOT / "configs" / "default.yaml"), "--data.train_size", "600", "--data.val_size", "60",
          "--data.test_size", "60", "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false",
          f"--data.cache_dir={root / 'cache'}", f"--trainer.logger.init_args.save_dir={root / 'logs'}"],
         config_dir=ROOT / "configs")  # fmt: skip
    (path,) = root.glob("logs/default/version_0/checkpoints/last.ckpt")
    return path


@pytest.fixture(scope="module")
def client(checkpoint):
    settings = Settings(str(checkpoint), max_batch_size=8, batch_timeout_ms=5, max_sentences=4, max_sentence_tokens=700)
    with TestClient(create_app(settings)) as session:
        yield session


SENTENCES = ["the plot was not dull .", "i do n't think that the cast played well .", "great !"]


def test_predict_answers_the_records_seqmodels_predict_writes(client, checkpoint):
    predictor = load_predictor(checkpoint)
    tokens = [s.split() for s in SENTENCES]
    expected = [{"tokens": t, **r} for t, r in zip(tokens, predictor(tokens))]
    assert client.post("/predict", json={"tokens": tokens[0]}).json() == expected[0]
    assert client.post("/predict", json={"text": "The plot wasn't dull."}).json()["tokens"] == \
        ["The", "plot", "was", "n't", "dull", "."]  # the simple tokenizer  # fmt: skip
    assert client.post("/predict", json={"sentences": [SENTENCES[0], tokens[1], SENTENCES[2]]}).json() == expected
    long = ["the", "film"] * 300  # 600 tokens: predicted in chunks of 512, as seqmodels-predict does
    assert client.post("/predict", json={"tokens": long}).json() == {"tokens": long, **predictor([long])[0]}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "invalid JSON"),
        (b'{"txt": "x"}', 422, "txt: Extra inputs are not permitted"),
        (b"{}", 422, "give exactly one of text, tokens or sentences (got none)"),
        (b'{"text": "a", "tokens": ["a"]}', 422, "give exactly one of text, tokens or sentences (got text, tokens)"),
        (b'{"sentences": []}', 422, "sentences: expected at least one sentence, got an empty list"),
        (b'{"tokens": "a b"}', 422, "tokens: Input should be a valid list"),
        (b'{"sentences": ["a", "b", "c", "d", "e"]}', 413, "5 sentences; a request may have at most 4"),
        (json.dumps({"tokens": ["w"] * 701}).encode(), 413, "a sentence of 701 tokens; at most 700"),
        (b'{"tokens": [""]}', 422, "tokens: expected tokens of one or more characters, found an empty one (token 1)"),
        (b'{"sentences": ["a", ["b", ""]]}', 422,
         "sentences.1: expected tokens of one or more characters, found an empty one (token 2)"),
        (b'{"tokens": ["\\ud800"]}', 422, "tokens: expected Unicode text, found a lone surrogate U+D800 in token 1"),
        (b'{"text": "a \\udc80"}', 422, "text: expected Unicode text, found a lone surrogate U+DC80 in token 2"),
        (b'{"text": "caf\xe9"}', 400, "There was an error parsing the body"),  # Latin-1, not UTF-8
    ],
    ids=["invalid-json", "unknown-field", "no-field", "two-fields", "empty-list", "wrong-type", "too-many", "too-long",
         "empty-token", "empty-token-in-sentences", "lone-surrogate", "lone-surrogate-in-text", "not-utf8"],
)  # fmt: skip
def test_a_bad_request_gets_a_one_line_4xx_and_the_server_carries_on(client, body, status, message):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and response.json() == {"error": message}
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_info_and_stats(client):
    info = client.get("/info").json()
    assert set(info["heads"]) == {"tagger", "classifier"} and info["heads"]["classifier"]["classes"] == \
        ["negative", "positive"]  # fmt: skip
    assert "NOUN" in info["heads"]["tagger"]["classes"] and info["model"]["encoder"]["hidden_size"] == 128
    assert info["serving"]["max_batch_size"] == 8 and info["version"]
    assert client.post("/predict", json={"text": "the film"}).status_code == 200  # not relying on other tests' requests
    stats = client.get("/stats").json()
    assert stats["requests"] >= 1 and sum(stats["batch_sizes"].values()) >= 1 and stats["busy_s"] > 0
    assert stats["in_flight"] == 0  # every request so far has had its answer


def test_threads_sets_torchs_threads_in_the_server_process(checkpoint):
    before = torch.get_num_threads()
    try:
        with TestClient(create_app(Settings(str(checkpoint), threads=1))) as session:
            assert session.get("/stats").json()["threads"] == 1  # read in the thread the model runs in
    finally:
        torch.set_num_threads(before)


def test_concurrent_requests_are_batched_together(checkpoint):
    settings = Settings(str(checkpoint), max_batch_size=16, batch_timeout_ms=200)
    with TestClient(create_app(settings)) as session, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda s: session.post("/predict", json={"text": s}).json(), SENTENCES * 4))
        sizes = {int(size): n for size, n in session.get("/stats").json()["batch_sizes"].items()}
    assert all("label" in a for a in answers) and max(sizes) > 1 and sum(sizes.values()) < 12


def test_a_batch_stays_within_max_batch_size_unless_one_request_is_larger():
    """A request that would overfill a batch starts the next one, so each batch is one forward pass."""
    batch_sizes = []

    def predictor(sentences):
        batch_sizes.append(len(sentences))
        return [{"tokens": sentence} for sentence in sentences]

    async def send(requests):
        batcher = Batcher(predictor, max_batch_size=8, timeout=0.05)
        task = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(*(batcher.predict(request) for request in requests))
        task.cancel()
        return answers

    requests = [[[f"request{i}"]] * n for i, n in enumerate([3, 3, 3, 12, 2, 5])]
    answers = asyncio.run(send(requests))
    assert answers == [[{"tokens": sentence} for sentence in request] for request in requests]
    assert batch_sizes == [6, 3, 12, 7]  # 3+3 (the third 3 waits), 3 (12 waits), 12 alone, 2+5


@pytest.mark.parametrize("backend", ["onnx", "torchscript", "torch-int8"])
def test_the_other_backends_predict_what_the_model_does(checkpoint, tmp_path, backend):
    """Exports are made once, beside the checkpoint (copied here), keyed on its hash; int8 stays close."""
    pytest.importorskip("onnxruntime")
    copy = tmp_path / "model.ckpt"
    shutil.copy(checkpoint, copy)
    tokens = [s.split() for s in SENTENCES]
    expected = load_predictor(copy)(tokens)
    got = load_predictor(copy, backend)(tokens)
    if backend == "torch-int8":
        assert sum(a == b for e, g in zip(expected, got) for a, b in zip(e["tags"], g["tags"])) >= 0.8 * sum(
            len(t) for t in tokens)
        return
    for e, g in zip(expected, got):
        assert e["tags"] == g["tags"] and e["label"] == g["label"]
        assert g["tag_probs"] == pytest.approx(e["tag_probs"], abs=1e-4)
    assert len(list(tmp_path.glob(f"model.*.{'onnx' if backend == 'onnx' else 'pt'}"))) == 1
    load_predictor(copy, backend)  # reused, not made again
    assert len(list(tmp_path.glob("model.*"))) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "seqmodels.server", str(checkpoint), "--port", str(port), *options]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server did not start: {server.stderr.read()}")


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight_then_exits(checkpoint):
    server, base = start_server(checkpoint, "--batch-timeout-ms", "5000")  # the batch waits 5 s to fill
    long = " ".join(["the film was dull"] * 500)
    with ThreadPoolExecutor(6) as pool:
        pending = [pool.submit(httpx.post, f"{base}/predict", json={"text": long}, timeout=60) for _ in range(6)]
        for _ in range(100):  # until all six are in the server: a fixed sleep lost the race on a loaded machine
            if httpx.get(f"{base}/stats", timeout=5).json()["in_flight"] == 6:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the six requests did not all reach the server within 5 s")
        server.send_signal(signal.SIGTERM)
        statuses = [future.result().status_code for future in pending]
    assert statuses == [200] * 6
    assert server.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has finished
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/health", timeout=1)


@pytest.mark.slow
def test_a_small_load_test_loses_nothing_and_every_answer_equals_the_offline_record(checkpoint, tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(["the plot was not dull .", "i loved that score", "the cast plays well ."] * 20))
    command = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), str(checkpoint), "--inputs", str(text),
               "--requests", "300", "--clients", "8"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    phase = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"ok"')][0]
    assert phase["lost"] == phase["differing"] == phase["wrongly_accepted"] == phase["unsent"] == 0
    assert phase["ok"] + phase["rejected"] == 300 and phase["rejected"] > 0 and phase["mean_batch"] > 1


def chromium() -> tuple[str, str] | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    return found if all(found) else None


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_the_demo_page_in_a_real_browser_shows_what_predict_answers(checkpoint, tmp_path):
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
    server, base = start_server(checkpoint)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(base)
        driver.find_element(By.ID, "text").send_keys("The plot was not dull.")
        driver.find_element(By.ID, "submit").click()
        WebDriverWait(driver, 30).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#result[data-ready]")))
        shown_tokens = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#tokens .chip .word")]
        shown_tags = [e.get_attribute("data-tag") for e in driver.find_elements(By.CSS_SELECTOR, "#tokens .chip")]
        shown_label = driver.find_element(By.ID, "label").get_attribute("data-label")
        bars = driver.find_elements(By.CSS_SELECTOR, "#label .label-row")
        driver.save_screenshot(str(tmp_path / "demo.png"))
        expected = httpx.post(f"{base}/predict", json={"text": "The plot was not dull."}).json()
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=60)
    assert shown_tokens == expected["tokens"] and shown_tags == expected["tags"]
    assert shown_label == expected["label"] and len(bars) == len(expected["label_probs"])
    assert (tmp_path / "demo.png").stat().st_size > 10_000
