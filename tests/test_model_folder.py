"""Model folders (``seqmodels-export --format hub``): safetensors and JSON that predict exactly what the checkpoint
predicts, a model card whose metadata the Hub parses and whose metrics are the run's, every entry point loading a
folder or a repository id from a local Hub cache (offline: no test touches the network), and one line for each
bad folder."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from test_predict import readme_commands
from test_server import ready, trained_checkpoint

from seqmodels.checkpoints import CheckpointError, provenance
from seqmodels.inference import Predictor, load_model
from seqmodels.inference.backends import load_predictor
from seqmodels.inference.export import main as export
from seqmodels.inference.folder import CONFIG, VOCAB, WEIGHTS
from seqmodels.inference.predict_cli import main as predict
from seqmodels.inference.server.app import Settings, create_app

SENTENCES = [["the", "film", "was", "great", "."], ["i", "do", "n't", "like", "it"], ["unseen", "words", "here"],
             ["the"] * 40, ["."]]  # fmt: skip
REPO = "someone/seqmodels-test"
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def records(source: str | Path) -> list[dict]:
    return Predictor(load_model(source))(SENTENCES)


def publish(checkpoint: Path, output: Path, *options: str) -> Path:
    export([str(checkpoint), "--format", "hub", "--output", str(output), *options])
    return output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A trained multitask checkpoint (tags and a label) in its run folder, with the run's metrics_fit.json."""
    return trained_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def folder(trained, tmp_path_factory) -> Path:
    return publish(trained, tmp_path_factory.mktemp("hub") / "model", "--license", "mit", "--language", "en")


@pytest.mark.parametrize("heads", [{"tagger": {}}, {"classifier": {}}, {"tagger": {}, "classifier": {}, "lm": {}}])
def test_a_folder_predicts_exactly_what_its_checkpoint_predicts(heads, make_model, tmp_path):
    model = make_model(chars=True, **heads)
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "seqmodels": provenance(None)}, checkpoint)  # fmt: skip
    output = publish(checkpoint, tmp_path / "model")
    assert sorted(path.name for path in output.iterdir()) == sorted([CONFIG, VOCAB, WEIGHTS, "README.md"])
    assert records(output) == records(checkpoint)
    assert not (tmp_path / "model.partial").exists()


@pytest.mark.parametrize("char_encoder", ["cnn", "lstm"])
def test_a_folder_of_an_earlier_release_loads_under_todays_weight_names(char_encoder, make_model, tmp_path):
    """0.3.0 named the character encoder ``char_cnn``; its folders still predict (``checkpoints.RENAMED``)."""
    model = make_model(chars=True, encoder={"char_encoder": char_encoder}, tagger={})
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "seqmodels": provenance(None)}, checkpoint)  # fmt: skip
    output = publish(checkpoint, tmp_path / "model")
    weights = load_file(output / WEIGHTS)
    save_file({name.replace("encoder.chars.", "encoder.char_cnn."): tensor for name, tensor in weights.items()},
              output / WEIGHTS)  # fmt: skip
    assert any(name.startswith("encoder.char_cnn.") for name in load_file(output / WEIGHTS))
    assert records(output) == records(checkpoint)
    int8 = load_predictor(output, "torch-int8")(SENTENCES)  # its character LSTM quantised, run packed
    assert [len(record["tags"]) for record in int8] == [len(sentence) for sentence in SENTENCES]


def test_the_trained_folder_is_smaller_and_predicts_what_the_checkpoint_does(trained, folder):
    assert records(folder) == records(trained)
    size = sum(path.stat().st_size for path in folder.iterdir())
    assert size < trained.stat().st_size / 2  # no optimizer state, no random number generators
    assert set(load_file(folder / WEIGHTS)) == set(load_model(trained).state_dict())


def test_the_model_cards_metadata_parses_and_its_metrics_are_the_runs(trained, folder):
    card = ModelCard.load(folder / "README.md")
    logged = json.loads((trained.parents[1] / "metrics_fit.json").read_text())
    expected = {key: round(value, 4) for key, value in logged.items() if key.startswith("test/") and "loss" not in key}
    assert {result.metric_name: result.metric_value for result in card.data.eval_results} == expected
    assert {result.task_type for result in card.data.eval_results} == {"token-classification", "text-classification"}
    assert (card.data.library_name, card.data.license, card.data.language) == ("seqmodels", "mit", ["en"])
    model = load_model(trained)
    for name, head in model.heads.items():
        assert f"**{name}**" in card.text and all(f"`{c}`" in card.text for c in head.classes)
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in card.text
    assert "seed_everything" in card.text  # the full config


def test_with_seeds_from_the_card_gives_mean_and_std_of_runs_of_its_config_only(trained, tmp_path):
    runs = []
    for seed, accuracy in enumerate([0.80, 0.90]):
        run = tmp_path / f"version_{seed}"
        run.mkdir()
        (run / "metrics_fit.json").write_text(json.dumps({"test/tagger/acc": accuracy}))
        (run / "config.yaml").write_text((trained.parents[1] / "config.yaml").read_text())
        runs.append(str(run))
    card = ModelCard.load(publish(trained, tmp_path / "model", "--seeds-from", *runs) / "README.md")
    assert "mean ± std of 2 runs" in card.text and "| 85.00 ± 7.07 |" in card.text
    other = tmp_path / "version_1" / "config.yaml"
    other.write_text(re.sub(r"hidden_size: \d+", "hidden_size: 7", other.read_text()))
    for runs_given, message in [(runs, "trained with another config"), (runs[:1] * 2, "two distinct run folders"),
                                ([runs[0], str(tmp_path)], "not a finished run folder")]:  # fmt: skip
        with pytest.raises(SystemExit, match=message):
            publish(trained, tmp_path / "refused", "--seeds-from", *runs_given)
    assert not (tmp_path / "refused").exists()


def test_what_an_export_would_destroy_or_cannot_use_is_refused_in_one_line(trained, folder, tmp_path):
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("precious")
    afile = tmp_path / "afile"
    afile.write_text("precious")
    for output, message in [(kept, "exists and is not a seqmodels model folder"), (afile, "exists and is not"),
                            (Path("."), "expected the path of the folder to write")]:  # fmt: skip
        with pytest.raises(SystemExit, match=message):
            publish(trained, output)
    assert (kept / "notes.txt").read_text() == afile.read_text() == "precious"
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(SystemExit, match="is a model folder already"):
        publish(folder, tmp_path / "again")
    publish(trained, folder)  # an earlier model folder is replaced


def hub_cache(folder: Path, cache: Path) -> Path:
    """``folder`` as ``huggingface_hub`` caches a download of REPO: blobs, a snapshot of links, refs/main."""
    repo = cache / f"models--{REPO.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in folder.iterdir():
        blob = repo / "blobs" / f"{file.name}.blob"
        blob.write_bytes(file.read_bytes())
        (repo / "snapshots" / commit / file.name).symlink_to(os.path.relpath(blob, repo / "snapshots" / commit))
    return cache


def test_a_repository_id_loads_from_the_hub_cache_offline(folder, tmp_path, monkeypatch):
    cache = hub_cache(folder, tmp_path / "cache")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert records(REPO) == records(folder)
    with pytest.raises(CheckpointError, match="cannot fetch the Hub repository someone/absent"):
        load_model("someone/absent")  # not cached, and offline: one line, no network
    env = os.environ | OFFLINE | {"HF_HUB_CACHE": str(cache)}  # the command line, as a user runs it
    done = subprocess.run([sys.executable, "-m", "seqmodels.inference.predict_cli", REPO, "the film was great ."],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tags"] == records(folder)[0]["tags"]


def test_the_onnx_export_and_the_server_take_a_folder(trained, folder, tmp_path):
    pytest.importorskip("onnxruntime")
    export([str(folder), "--format", "onnx", "--output", str(tmp_path / "model.onnx")])
    assert (tmp_path / "model.onnx").stat().st_size > 0
    answers = {}
    for source in (trained, folder):
        with TestClient(create_app(Settings(str(source)))) as session:
            session = ready(session)
            info = session.get("/info").json()
            answers[source] = (session.post("/predict", json={"sentences": ["the film was great ."]}).json(),
                               info["heads"], session.get("/").status_code)  # fmt: skip
    assert answers[trained] == answers[folder]


def corrupt(folder: Path, how: str) -> str:
    """Spoil a copy of the folder's files as ``how`` says; the file the error must name."""
    if how == "truncated weights":
        data = (folder / WEIGHTS).read_bytes()
        (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
        return WEIGHTS
    if how == "edited json":
        (folder / VOCAB).write_text((folder / VOCAB).read_text()[:-20])
        return VOCAB
    if how == "vocabulary without <unk>":
        vocab = json.loads((folder / VOCAB).read_text())
        vocab["tokens"].remove("<unk>")
        (folder / VOCAB).write_text(json.dumps(vocab))
        return f"{VOCAB}: 'tokens' must start with '<pad>' and '<unk>'"
    if how == "missing vocabulary":
        (folder / VOCAB).unlink()
        return VOCAB
    config = json.loads((folder / CONFIG).read_text())
    if how == "newer format":
        config["seqmodels"] = {"format": 99, "version": "9.0"}
        (folder / CONFIG).write_text(json.dumps(config))
        return "seqmodels 9.0 (folder format 99)"
    if how == "unknown head type":
        config["heads"] = {"mine": {"type": "no_such_head"}}
        (folder / CONFIG).write_text(json.dumps(config))
        return "'no_such_head'; the registered types are ["
    weights = load_file(folder / WEIGHTS)  # "wrong shape": one weight of another size
    name = next(name for name in weights if name.endswith("weight"))
    weights[name] = torch.zeros(3, 3)
    save_file(weights, folder / WEIGHTS)
    return f"'{name}' is (3, 3) there"


@pytest.mark.parametrize("how", ["truncated weights", "edited json", "vocabulary without <unk>", "missing vocabulary",
                                 "newer format", "unknown head type", "wrong shape"])  # fmt: skip
def test_a_bad_folder_fails_in_one_line_that_names_the_file(folder, how, tmp_path):
    copy = tmp_path / "model"
    copy.mkdir()
    for file in folder.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    named = corrupt(copy, how)
    with pytest.raises(CheckpointError) as error:
        load_model(copy)
    assert named in str(error.value) and str(copy) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(SystemExit) as exit:  # the command says the same in its one line
        predict([str(copy), "the film ."])
    assert str(exit.value) == f"seqmodels-predict: error: {error.value}"


def test_the_docs_hub_export_commands_as_written_and_push_to_uploads(trained, tmp_path, monkeypatch):
    commands = [line for line in readme_commands("seqmodels-export") if "--format hub" in line]
    assert any("--push-to" in line for line in commands) and any("--push-to" not in line for line in commands)
    for command in [line for line in commands if "--push-to" not in line]:  # the others need the network
        result = subprocess.run(["bash", "-c", command.replace(" CKPT ", f" {trained} ")], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, (command, result.stderr)
        output = tmp_path / command.split("--output ")[1].split()[0]
        assert ModelCard.load(output / "README.md").data.library_name == "seqmodels"
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="not logged in"):  # checked before anything is written
        publish(trained, tmp_path / "pushed", "--push-to", REPO)
    assert not (tmp_path / "pushed").exists()
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_token")
    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo, exist_ok: calls.append(("create", repo)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kwargs: calls.append(("upload", kwargs)))
    publish(trained, tmp_path / "pushed", "--push-to", REPO)
    assert calls == [("create", REPO), ("upload", {"repo_id": REPO, "folder_path": tmp_path / "pushed",
                                                  "repo_type": "model"})]  # fmt: skip
    assert f"# {REPO}" in (tmp_path / "pushed" / "README.md").read_text()  # the card names where it is published
