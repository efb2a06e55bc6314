"""Pretraining on unlabelled text, then fine-tuning: configs/pretrain_lm.yaml trains the encoder as a language model,
and ``--model.init_from`` starts a task model from it (sizes, weights, and the words only the raw text had), whose
checkpoint then predicts alone. Reading the raw text streams it."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import CHILD_ENV
from test_checkpoints import TAGGED, write_conllu

from seqmodels.checkpoints import CheckpointError, read_checkpoint
from seqmodels.cli import main
from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor
from seqmodels.models.sequence_model import SequenceModel

RAW_ONLY = ["marvellous", "dreadful", "soundtrack"]  # words of the raw text that no labelled sentence trains on
SMALL = ["--model.encoder.embedding_dim", "8", "--model.encoder.hidden_size", "8",
         "--model.encoder.char_channels", "6"]  # fmt: skip


def quiet(root, name: str) -> list[str]:
    """Options that keep a run's files under ``root`` and its output short."""
    return ["--trainer.enable_progress_bar", "false", f"--data.cache_dir={root / 'cache'}",
            f"--trainer.logger.init_args.save_dir={root / 'logs'}",
            f"--trainer.logger.init_args.name={name}"]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A two-layer language model pretrained by train.py on 300 raw sentences, and its best checkpoint."""
    root = tmp_path_factory.mktemp("pretrained")
    rng = random.Random(0)
    words = [*TAGGED, *RAW_ONLY]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(300)]
    (root / "raw.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--config", "configs/pretrain_lm.yaml", f"--data.train_file={root / 'raw.txt'}", *SMALL,
            "--model.lm.vocab_size", "20", "--trainer.max_steps", "12", "--trainer.val_check_interval", "4",
            *quiet(root, "lm")]  # fmt: skip
    cli = main(["fit", *args])
    return {"root": root, "checkpoint": cli.trainer.checkpoint_callback.best_model_path}


def test_the_pretrained_model_is_a_two_layer_language_model_with_separate_directions(pretrained):
    checkpoint = read_checkpoint(pretrained["checkpoint"])
    hparams = checkpoint["hyper_parameters"]
    assert hparams["encoder"]["num_layers"] == 2 and hparams["encoder"]["separate_directions"]
    assert set(hparams["vocab"]) == {"tokens", "chars"} and hparams["lm"]["vocab_size"] == 20
    (written,) = (pretrained["root"] / "logs" / "lm").glob("version_0/metrics_fit.json")
    metrics = json.loads(written.read_text())
    assert metrics["val/lm/perplexity"] < 30  # below uniform over 20 words + <unk>: it learned something


def test_init_from_copies_the_encoder_by_symbol_and_takes_its_sizes(pretrained):
    checkpoint = read_checkpoint(pretrained["checkpoint"])
    their_vocab = checkpoint["hyper_parameters"]["vocab"]
    tokens = ["<pad>", "<unk>", "newword", *reversed(their_vocab["tokens"][2:])]  # other ids than the LM's
    vocab = {"tokens": tokens, "chars": their_vocab["chars"], "tagger": ["ADJ", "NOUN"]}
    with pytest.warns(UserWarning) as warned:  # the shape it replaces is named, the settings it keeps are not
        model = SequenceModel(vocab, encoder={"hidden_size": 99, "dropout": 0.1, "kernel": "packed"}, tagger={},
                              init_from=pretrained["checkpoint"])  # fmt: skip
    assert [str(w.message) for w in warned] == [f"model.init_from: the encoder takes {pretrained['checkpoint']}'s "
                                                f"shape: hidden_size 8 (the config's 99)"]  # fmt: skip
    assert model.encoder.lstm.hidden_size == 8 and model.encoder.lstm.num_layers == 2  # the checkpoint's sizes
    assert model.hparams.encoder["dropout"] == 0.1 and model.hparams.init_from is None  # the task's; weights within
    assert model.encoder.kernel == "packed"  # the task's too: how to run it, not what it is
    theirs = checkpoint["state_dict"]
    torch.testing.assert_close(model.encoder.lstm.backward_stack.weight_hh_l1,
                               theirs["encoder.lstm.backward_stack.weight_hh_l1"], rtol=0, atol=0)  # fmt: skip
    for word in ("cast", "marvellous"):
        ours, their_id = model.encoder.embedding.weight[tokens.index(word)], their_vocab["tokens"].index(word)
        torch.testing.assert_close(ours, theirs["encoder.embedding.weight"][their_id], rtol=0, atol=0)
    assert not any(torch.equal(model.encoder.embedding.weight[2], row) for row in theirs["encoder.embedding.weight"])


def test_init_from_a_checkpoint_that_named_the_character_encoder_char_cnn(pretrained, tmp_path):
    checkpoint = torch.load(pretrained["checkpoint"], weights_only=False)
    chars = {key: value for key, value in checkpoint["state_dict"].items() if key.startswith("encoder.chars.")}
    assert chars
    for key, value in chars.items():  # as checkpoints from before the character BiLSTM named them
        del checkpoint["state_dict"][key]
        checkpoint["state_dict"][key.replace("encoder.chars.", "encoder.char_cnn.")] = value
    torch.save(checkpoint, tmp_path / "old.ckpt")
    vocab = {**checkpoint["hyper_parameters"]["vocab"], "tagger": ["ADJ", "NOUN"]}
    model = SequenceModel(vocab, encoder={}, tagger={}, init_from=str(tmp_path / "old.ckpt"))
    for key, value in chars.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("factor", [0.1, 1.0])
def test_encoder_lr_factor_scales_the_encoders_learning_rate_and_the_schedule_keeps_it(factor):
    """The encoder's parameters, and only they, train at ``factor`` times the optimizer's learning rate, through a
    scheduler's steps; at 1 the optimizer is as before (one group, so older checkpoints resume)."""
    vocab = {"tokens": ["<pad>", "<unk>", "a", "b"], "tagger": ["X", "Y"]}
    model = SequenceModel(vocab, encoder={"hidden_size": 4, "embedding_dim": 3}, tagger={}, encoder_lr_factor=factor,
                          optimizer=lambda params: torch.optim.Adam(params, lr=0.01),
                          lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5))
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(lr_of) == len(list(model.parameters())) and len(optimizer.param_groups) == (1 if factor == 1 else 2)
    for name, parameter in model.named_parameters():
        expected = 0.01 * 0.25 * (factor if name.startswith("encoder.") else 1)
        assert lr_of[id(parameter)] == pytest.approx(expected), name


def test_a_non_positive_or_infinite_encoder_lr_factor_is_refused_naming_the_setting(capsys):
    """By train.py before it reads any data, and by the model built in Python."""
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/default.yaml", "--model.encoder_lr_factor", "0"])
    assert 'key "model.encoder_lr_factor": Not of type PositiveFloat' in capsys.readouterr().err
    vocab = {"tokens": ["<pad>", "<unk>", "a"], "tagger": ["X", "Y"]}
    for factor in (0, math.inf):  # inf passes PositiveFloat
        with pytest.raises(ValueError, match=f"model.encoder_lr_factor must be positive and finite, got {factor}"):
            SequenceModel(vocab, encoder={"hidden_size": 4}, tagger={}, encoder_lr_factor=factor).configure_optimizers()


@pytest.mark.parametrize(("before", "after"), [("1.0", "0.5"), ("0.5", "0.25")])
def test_resuming_with_another_encoder_lr_factor_is_refused_naming_it(tmp_path, capsys, before, after):
    """From or to 1 the optimizer's state would not fit its groups; between two others it would bring back the old
    ratio while the new checkpoint recorded the new one. Either way, one line that names the option."""
    args = ["--config", "configs/default.yaml", *quiet(tmp_path, "run"), "--model.encoder_lr_factor", before,
            "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "2"]  # fmt: skip
    cli = main(["fit", *args, "--trainer.max_steps", "2"])
    saved = cli.trainer.checkpoint_callback.best_model_path
    with pytest.raises(SystemExit):
        main(["fit", *args, "--trainer.max_steps", "4", "--model.encoder_lr_factor", after, "--ckpt_path", saved])
    error = capsys.readouterr().err
    assert f"trained with model.encoder_lr_factor={before}, and this run has {after}" in error, error
    assert f"resume with --model.encoder_lr_factor {before}" in error and "Traceback" not in error


def test_fine_tuning_from_it_reads_the_raw_texts_words_and_its_checkpoint_predicts_alone(pretrained, tmp_path, capsys):
    """``--model.init_from`` with ud_upos.yaml unchanged (other sizes): the words of the raw text join the
    vocabulary, all of them, not only those the labelled files have; with the pretrained checkpoint deleted, the
    task's checkpoint still loads and predicts. ``train.py test`` rebuilds the vocabularies from the data, so it needs
    the option again, and its error says so."""
    for split, seed in (("train", 0), ("dev", 1), ("test", 2)):
        write_conllu(tmp_path / f"{split}.conllu", 30, seed)
    lm = tmp_path / "lm.ckpt"
    shutil.copyfile(pretrained["checkpoint"], lm)
    args = ["--config", "configs/ud_upos.yaml", f"--data.train_file={tmp_path / 'train.conllu'}",
            f"--data.val_file={tmp_path / 'dev.conllu'}", f"--data.test_file={tmp_path / 'test.conllu'}",
            "--model.init_from", str(lm), "--trainer.max_steps", "4", *quiet(tmp_path, "tagger")]  # fmt: skip
    cli = main(["fit", *args])
    best = cli.trainer.checkpoint_callback.best_model_path
    lm.unlink()
    model = load_model(best)
    assert model.encoder.lstm.hidden_size == 8 and set(RAW_ONLY) <= set(model.hparams.vocab["tokens"])
    records = Predictor(model)([["the", "marvellous", "cast"]])
    assert len(records[0]["tags"]) == 3 and set(records[0]["tags"]) <= set(TAGGED.values())
    forgotten = [arg for arg in args if arg not in ("--model.init_from", str(lm))]  # train.py test without it
    with pytest.raises(SystemExit):
        main(["test", *forgotten, "--ckpt_path", best])
    error = capsys.readouterr().err
    assert f"the fit that wrote it had --data.pretrained_embeddings {lm} --model.init_from {lm}" in error, error


@pytest.mark.parametrize(("kept", "setting"), [(["chars", "cases"], "lowercase False"), ([], "char_features True")])
def test_a_pretrained_model_that_read_tokens_otherwise_is_refused_in_one_line(pretrained, kept, setting):
    """Lower-cased words with a case feature, or no characters: not the input the pretrained weights expect."""
    vocab = {"tokens": ["<pad>", "<unk>", "cast"], "chars": ["<pad>", "<unk>"], "cases": ["<pad>"], "tagger": ["A"]}
    vocab = {name: items for name, items in vocab.items() if name in kept or name in ("tokens", "tagger")}
    with pytest.raises(CheckpointError, match=f"was trained with data.{setting.replace(' ', '=')}.*--data.{setting}$"):
        SequenceModel(vocab, tagger={}, init_from=pretrained["checkpoint"])


PEAK_MEMORY_PROBE = textwrap.dedent("""
    import sys, threading, time
    from dataclasses import asdict
    from seqmodels.data.datamodule import SequenceDataModule
    from seqmodels.models.heads import head_field

    def anonymous() -> int:  # resident memory that is no file's (an Arrow file mapped into memory is one)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))

    peak = [anonymous()]
    def watch() -> None:
        while True:
            peak[0] = max(peak[0], anonymous())
            time.sleep(0.01)

    fields = {"lm": asdict(head_field("lm", {"type": "lm"}))}
    data = SequenceDataModule(format="text", train_file=sys.argv[1], val_fraction=0.01, min_freq=2,
                              char_features=True, cache_dir=sys.argv[2], fields=fields)
    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.1)
    before = peak[0]
    data.setup("fit")
    next(iter(data.train_dataloader()))
    time.sleep(0.1)
    print(peak[0] - before, len(data.vocab["tokens"]))
""")


def peak_growth(tmp_path, megabytes: int) -> tuple[int, int, int]:
    """Write ``megabytes`` of raw text (40-word sentences over 20,000 words); read it, build the vocabularies, encode
    it and draw a training batch in a fresh process: its file size, peak growth of memory and vocabulary size."""
    rng = random.Random(megabytes)
    words = [f"word{i}" for i in range(20_000)]
    path = tmp_path / f"raw{megabytes}.txt"
    with path.open("w", encoding="utf-8") as file:
        while file.tell() < megabytes * 1_000_000:
            file.write("\n".join(" ".join(rng.choices(words, k=40)) for _ in range(500)) + "\n")
    probe = subprocess.run([sys.executable, "-c", PEAK_MEMORY_PROBE, str(path), str(tmp_path / f"cache{megabytes}")],
                           capture_output=True, text=True, check=True, env=os.environ | CHILD_ENV)  # fmt: skip
    grown, vocabulary = map(int, probe.stdout.split())
    return path.stat().st_size, grown, vocabulary


def test_a_large_raw_text_is_streamed_not_loaded_whole(tmp_path):
    """Each further megabyte of raw text raises the peak memory of preparing it for training by far less than a
    megabyte: the text is never in memory whole (as a string it would take a byte a byte; as lists of words, six).
    What does grow with the file is per sentence (its length, its place in the shuffled order)."""
    small_size, small_growth, vocabulary = peak_growth(tmp_path, 5)
    large_size, large_growth, _ = peak_growth(tmp_path, 25)
    assert vocabulary == 20_002
    per_byte = (large_growth - small_growth) / (large_size - small_size)
    assert per_byte < 0.25, f"{per_byte:.2f} bytes of memory per byte of text ({small_growth}, {large_growth})"
