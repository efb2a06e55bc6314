"""Predict with a checkpoint alone: sentences in, tags and/or a label out, streamed in batches.

``seqmodels-predict CHECKPOINT [TEXT ...] [--input FILE] [--output FILE] [--format jsonl|conllu|conll]
[--input-format text|conllu|conll] [--tokenizer whitespace|simple] [--batch-size N] [--max-tokens N]``

Input: the TEXT arguments, else ``--input FILE``, else stdin; UTF-8. As ``text``, one sentence per line,
split into tokens by ``--tokenizer`` (see :data:`TOKENIZERS`); an empty line gives an empty prediction.
As ``conllu`` / ``conll``, sentences are blocks of lines separated by blank lines, and the tokens are
the FORM column (conllu; comments, ``3-4`` multiword and ``8.1`` empty-node lines are not tokens) or the
first column (conll; ``-DOCSTART-`` lines are not tokens). Tokens are looked up as the model was trained
(lower-cased when it has a case feature); unknown words and characters map to ``<unk>``.

Output (``--format``, by default jsonl for text and the input's format otherwise), one record per sentence:

- ``jsonl``: ``{"tokens", "tags", "tag_probs" (softmax probability of each chosen tag) or "crf_path": true
  (a CRF's Viterbi path has no per-token probability), "label", "label_probs"}``, as the model's heads give;
- ``conllu``: the input lines with the tag in the UPOS column, other lines untouched;
- ``conll``: the input lines with the tag appended as a last column.

Blocks are written back followed by one blank line. The input is read lazily and the output written
batch by batch, so memory stays constant on large files. A sentence longer than ``--max-tokens`` is cut
into chunks predicted separately (a warning says so): its tags are concatenated, and its label is the
argmax of the chunks' label probabilities averaged by chunk length.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import re
import string
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

from seqmodels.checkpoints import CheckpointError, check_fits, read_checkpoint
from seqmodels.data.batching import PadCollator
from seqmodels.data.readers import ConlluTagField, tokenize
from seqmodels.data.vocab import Numericalizer
from seqmodels.models.sequence_model import SequenceModel

_SIMPLE_TOKEN = re.compile(
    r"""
      (?:[^\W\d_]\.){2,}                                  # abbreviations stay whole: U.S. e.g.
    | \w+?(?=n't\b) | n't\b                              # don't -> do n't, can't -> ca n't
    | '(?:s|re|ve|ll|d|m)\b                               # it's -> it 's, we're -> we 're
    | \w+(?: [-.]\w+ | '(?!(?:s|re|ve|ll|d|m)\b)\w+ )*   # words: well-known, 3.5, o'clock
    | \S                                                 # anything else alone: punctuation, symbols, emoji
    """,
    re.IGNORECASE | re.VERBOSE,
)


def simple_tokenize(text: str) -> list[str]:
    """Split punctuation and English clitics off words, PTB-style; a typographic apostrophe (’) counts as '."""
    return _SIMPLE_TOKEN.findall(text.replace("\u2019", "'"))


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": tokenize,  # pre-tokenized text, as the corpora are (ASCII whitespace; U+00A0 stays inside tokens)
    "simple": simple_tokenize,  # raw English text, split like the PTB-tokenized corpora
}


class InputError(ValueError):
    """Input that cannot be read as the chosen format, or an output format the model cannot fill."""


# The data module's defaults: what a model built without one (data_options=None), or a checkpoint written before
# 0.3.0 (which recorded none), was trained with.
DEFAULT_DATA_OPTIONS = {"max_word_length": 20, "format": None, "tag_column": None, "tag_scheme": "keep"}


def load_model(path: str | Path, device: str = "cpu") -> SequenceModel:
    """The model of a seqmodels checkpoint, in eval mode, rebuilt from the file alone (``weights_only``)."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    defaults = DEFAULT_DATA_OPTIONS | {"lowercase": "cases" in hparams["vocab"]}
    if "data_options" not in hparams:
        warnings.warn(f"{path} records no data options (written before seqmodels 0.3.0); assuming {defaults}")
    hparams["data_options"] = defaults | (hparams.get("data_options") or {})
    # Built directly rather than by load_from_checkpoint: a checkpoint that still holds LightningCLI's
    # `_instantiator` (older ones; SequenceModel now drops it) would go through jsonargparse, whose checks
    # take a minute on a 10,000-word vocabulary.
    try:
        model = SequenceModel(**{key: value for key, value in hparams.items() if not key.startswith("_")})
    except (TypeError, ValueError, RuntimeError) as error:  # hyperparameters this version cannot build
        raise CheckpointError(f"cannot rebuild the model from {path} ({_first_line(error)})") from None
    check_fits(checkpoint, model, path)  # names the first weight that does not fit (load_state_dict: many lines)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@dataclass
class Sentence:
    """One input sentence: its tokens, and for CoNLL input the lines it came from (written back with the tags)."""

    tokens: list[str]
    lines: list[str] = field(default_factory=list)
    where: str = ""  # "input:line", for warnings


def _is_conllu_word(line: str) -> bool:
    return line.split("\t", 1)[0].isdigit()  # not a comment, a 3-4 multiword range or an 8.1 empty node


def _is_conll_word(line: str) -> bool:
    return not line.startswith("-DOCSTART-")


def read_text(lines: Iterable[str], tokenizer: Callable[[str], list[str]], name: str) -> Iterator[Sentence]:
    """One sentence per line."""
    for number, line in enumerate(lines, start=1):
        yield Sentence(tokenizer(line), where=f"{name}:{number}")


def read_blocks(lines: Iterable[str], input_format: str, name: str) -> Iterator[Sentence]:
    """CoNLL-U / CoNLL: a sentence per block of non-blank lines, its tokens from the word lines' FORM / first column."""
    is_word = _is_conllu_word if input_format == "conllu" else _is_conll_word
    numbered = enumerate((line.rstrip("\r\n") for line in lines), start=1)
    for blank, group in itertools.groupby(numbered, key=lambda item: not item[1].strip()):
        if blank:
            continue
        block = list(group)
        tokens = []
        for number, line in block:
            if not is_word(line):
                continue
            if input_format == "conllu":
                fields = line.split("\t")
                if len(fields) != 10:
                    raise InputError(f"{name}:{number}: expected 10 TAB-separated columns, found {len(fields)}")
                tokens.append(fields[1])
            else:
                tokens.append(tokenize(line)[0])  # ASCII whitespace, as the training reader splits columns
        yield Sentence(tokens, [line for _, line in block], where=f"{name}:{block[0][0]}")


def _tag_lines(
    lines: list[str], tags: list[str], is_word: Callable[[str], bool], tag_line: Callable[[str, str], str]
) -> str:
    """The block with ``tag_line(line, tag)`` applied to its word lines, in order, and a blank line after it."""
    tag_iter = iter(tags)
    return "".join(f"{tag_line(line, next(tag_iter)) if is_word(line) else line}\n" for line in lines) + "\n"


def format_jsonl(sentence: Sentence, prediction: dict[str, Any]) -> str:
    return json.dumps({"tokens": sentence.tokens, **prediction}, ensure_ascii=False) + "\n"


def format_conllu(sentence: Sentence, prediction: dict[str, Any], field: ConlluTagField) -> str:
    """The CoNLL-U block with the tag in the column (or FEATS/MISC attribute) the model's tags came from."""

    def fill(line: str, tag: str) -> str:
        return "\t".join(field.set(line.split("\t"), tag))

    return _tag_lines(sentence.lines, prediction.get("tags", []), _is_conllu_word, fill)


def format_conll(sentence: Sentence, prediction: dict[str, Any]) -> str:
    """The CoNLL block with the tag appended as a new last column (the line's own separator); text gets
    ``TOKEN<TAB>TAG`` lines."""
    tags = prediction.get("tags", [])
    if not sentence.lines:
        return "".join(f"{token}\t{tag}\n" for token, tag in zip(sentence.tokens, tags)) + "\n"

    def append_column(line: str, tag: str) -> str:
        return line + ("\t" if "\t" in line else " ") + tag

    return _tag_lines(sentence.lines, tags, _is_conll_word, append_column)


Writer = Callable[[Sentence, dict[str, Any]], str]
WRITERS: dict[str, Writer] = {
    "jsonl": format_jsonl,
    "conllu": format_conllu,
    "conll": format_conll,
}


class Predictor:
    """Batched prediction: lists of tokens in, one JSON-ready dict per sentence out (``{}`` for no tokens).

    Sentences longer than ``max_tokens`` are cut into chunks, and at most ``batch_size`` chunks go
    through the model at once, so memory is bounded whatever the input. Words are read as in training
    (the checkpoint's ``data_options``: lower-casing, characters kept per word). ``unknown`` counts the
    tokens the model has no embedding for, out of ``seen``.
    """

    def __init__(self, model: SequenceModel, batch_size: int = 32, max_tokens: int = 512) -> None:
        self.model, self.batch_size, self.max_tokens = model, batch_size, max_tokens
        self.numericalize = Numericalizer(model.hparams.vocab, model.hparams.data_options["max_word_length"])
        self.collate = PadCollator()
        self.seen = self.unknown = 0
        self.unknown_sample: list[str] = []  # the first unknown tokens, to tell why they are unknown

    def __call__(self, sentences: list[list[str]]) -> list[dict[str, Any]]:
        chunks: list[list[str]] = []
        spans = []  # each sentence's chunks, as indices into `chunks`
        for tokens in sentences:
            starts = range(0, len(tokens), self.max_tokens)
            spans.append(range(len(chunks), len(chunks) + len(starts)))
            chunks += [tokens[start : start + self.max_tokens] for start in starts]
        scored = []
        for start in range(0, len(chunks), self.batch_size):
            scored += self._score(chunks[start : start + self.batch_size])
        return [self._merge([scored[i] for i in span]) for span in spans]

    @torch.inference_mode()
    def _score(self, chunks: list[list[str]]) -> list[dict[str, Any]]:
        """Each chunk's length, tag ids and tag probabilities (not under a CRF), and label probabilities."""
        encoded = self.numericalize({"tokens": chunks})
        unk_id = self.numericalize.vocab["tokens"].unk_id
        self.seen += sum(len(chunk) for chunk in chunks)
        self.unknown += sum(ids.count(unk_id) for ids in encoded["token_ids"])
        if len(self.unknown_sample) < 200:
            pairs = zip(itertools.chain(*chunks), itertools.chain(*encoded["token_ids"]))
            self.unknown_sample += [token for token, i in pairs if i == unk_id][: 200 - len(self.unknown_sample)]
        batch = self.collate([dict(zip(encoded, values)) for values in zip(*encoded.values())])
        lengths = batch["lengths"]  # (B,), on the CPU, as packing wants
        features = {key: value.to(self.model.device) for key, value in batch.items() if key != "lengths"}
        scores = self.model(features["token_ids"], lengths, features.get("char_ids"), features.get("case_ids"))
        results: list[dict[str, Any]] = [{"length": n} for n in lengths.tolist()]
        if "tagger" in scores:
            head = self.model.heads["tagger"]
            tag_ids = head.predict(scores["tagger"], lengths)  # (B, T), IGNORE_INDEX at padding
            for result, ids in zip(results, tag_ids.tolist()):
                result["tag_ids"] = ids[: result["length"]]
            if head.crf is None:
                chosen = scores["tagger"].softmax(-1).gather(-1, tag_ids.clamp(min=0).unsqueeze(-1))  # (B, T, 1)
                for result, probs in zip(results, chosen.squeeze(-1).tolist()):
                    result["tag_probs"] = probs[: result["length"]]
        if "classifier" in scores:
            for result, probs in zip(results, scores["classifier"].softmax(-1).cpu()):  # (K,) each
                result["label_probs"] = probs
        return results

    def _merge(self, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """A sentence's prediction from its chunks': tags concatenated, label probabilities averaged by length."""
        if not chunks:
            return {}
        vocab = self.model.vocab
        prediction: dict[str, Any] = {}
        if "tag_ids" in chunks[0]:
            prediction["tags"] = vocab["tags"].decode(i for chunk in chunks for i in chunk["tag_ids"])
            if "tag_probs" in chunks[0]:
                prediction["tag_probs"] = [round(p, 6) for chunk in chunks for p in chunk["tag_probs"]]
            else:
                prediction["crf_path"] = True  # a Viterbi path has no per-token probability
        if "label_probs" in chunks[0]:
            weights = torch.tensor([float(chunk["length"]) for chunk in chunks])  # (N,)
            probs = weights @ torch.stack([chunk["label_probs"] for chunk in chunks]) / weights.sum()  # (K,)
            labels = vocab["labels"].itos
            prediction["label"] = labels[int(probs.argmax())]
            prediction["label_probs"] = {label: round(p, 6) for label, p in zip(labels, probs.tolist())}
        return prediction


def _batched(items: Iterable[Sentence], size: int) -> Iterator[list[Sentence]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _undecodable(path: Path | None) -> str:
    """Where input that is not UTF-8 is: ``FILE:LINE`` (the file read again, line by line), else ``<stdin>``."""
    if path is None:
        return "<stdin>"
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"{path}:{number}"
    return str(path)


def _utf8(stream: TextIO) -> TextIO:
    """stdin / stdout as UTF-8 whatever the locale says, so that any Unicode goes through."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8")
    return stream


UNKNOWN_WARNING = 0.3  # warn when more of the input's tokens than this are unknown to the model
INPUT_SUFFIXES = {".conllu": "conllu", ".conll": "conll", ".txt": "text", "": "text"}
OUTPUT_SUFFIXES = {".conllu": "conllu", ".conll": "conll", ".jsonl": "jsonl", ".json": "jsonl"}


def likely_cause(unknown: list[str], known: Callable[[str], bool]) -> str:
    """Why tokens are unknown, judged from a sample of them: case, attached punctuation, or other text."""
    by_case = sum(known(t.lower()) or known(t.capitalize()) for t in unknown)
    by_punctuation = sum(known(t.strip(string.punctuation)) for t in unknown if t.strip(string.punctuation) != t)
    if by_case >= max(by_punctuation, 0.25 * len(unknown)):
        return "case: the training text had other capitalisation (e.g. lower-cased)"
    if by_punctuation >= 0.25 * len(unknown):
        return "the tokenizer: punctuation is still attached to words (try --tokenizer simple)"
    return "another language or domain than the training data"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the input and output formats inferred from the files' suffixes where not given."""
    parser = argparse.ArgumentParser(
        prog="seqmodels-predict",
        description="Tag and/or classify sentences with a seqmodels checkpoint (the .ckpt file alone).",
        epilog="Formats: the input's from its suffix (.conllu, .conll; .txt or none: text), the output's from "
        "its suffix (.conllu, .conll, .jsonl), else JSON Lines for text and the input's format for CoNLL. "
        "Tokenizers: whitespace splits on ASCII whitespace (pre-tokenized text, as the corpora are); "
        "simple also splits punctuation and English clitics PTB-style (don't -> do n't, film. -> film .).",
    )
    parser.add_argument("checkpoint")
    parser.add_argument("text", nargs="*", metavar="TEXT", help="sentences (else --input, else stdin)")
    parser.add_argument("--input", type=Path, help="a UTF-8 file to read instead of stdin")
    parser.add_argument("--output", type=Path, help="where to write (default: stdout)")
    parser.add_argument("--input-format", choices=("text", "conllu", "conll"), help="default: from --input's suffix")
    parser.add_argument("--format", choices=WRITERS, help="default: from --output's suffix, else as said below")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="whitespace", help="for text input")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    parser.add_argument("--max-tokens", type=int, default=512, help="longer sentences are predicted in chunks")
    parser.add_argument("--device", default="cpu", help="e.g. cpu, cuda, cuda:1")
    args = parser.parse_intermixed_args(argv)  # options before or after the sentences
    if args.text and args.input:
        parser.error("give sentences as arguments or --input, not both")
    if args.batch_size < 1 or args.max_tokens < 1:
        parser.error("--batch-size and --max-tokens must be positive")
    if args.input_format is None:
        suffix = args.input.suffix.lower() if args.input else ""
        if suffix not in INPUT_SUFFIXES:
            parser.error(f"cannot tell the format of {args.input} from its suffix; give --input-format text|conllu|conll")
        args.input_format = INPUT_SUFFIXES[suffix]
    implied = OUTPUT_SUFFIXES.get(args.output.suffix.lower()) if args.output else None
    if args.format and implied and args.format != implied:
        parser.error(f"--format {args.format} would write {args.format} into {args.output}; choose one")
    args.format = args.format or implied or ("jsonl" if args.input_format == "text" else args.input_format)
    if {args.format, args.input_format} == {"conllu", "conll"}:
        parser.error(f"cannot write {args.format} from {args.input_format} input")
    return args


def check_output(args: argparse.Namespace, model: SequenceModel) -> None:
    """Refuse output that cannot be right, naming the fix."""
    if args.format != "jsonl" and "tagger" not in model.heads:
        raise InputError(f"--format {args.format} writes tags, but this model has no tagger; use --format jsonl")
    if args.format == "conllu" and args.input_format == "text":
        raise InputError(
            "CoNLL-U output is the CoNLL-U input with the predicted column filled in; for text input "
            "write JSON Lines (--format jsonl, or an --output ending in .jsonl)"
        )


def predict(predictor: Predictor, sentences: Iterable[Sentence], write: Writer, output: TextIO) -> None:
    """Predict batch by batch, writing each batch as soon as it is done; a bar on stderr when it is a terminal."""
    max_tokens = predictor.max_tokens
    progress = tqdm(sentences, unit=" sentences", file=sys.stderr, disable=not sys.stderr.isatty())
    for batch in _batched(progress, predictor.batch_size):
        for sentence in (s for s in batch if len(s.tokens) > max_tokens):
            n, chunks = len(sentence.tokens), -(-len(sentence.tokens) // max_tokens)  # ceil
            message = f"{n} tokens > --max-tokens {max_tokens}; predicted as {chunks} separate chunks"
            tqdm.write(f"seqmodels-predict: warning: {sentence.where}: {message}", file=sys.stderr)
        for sentence, prediction in zip(batch, predictor([s.tokens for s in batch])):
            output.write(write(sentence, prediction))
    if predictor.seen and predictor.unknown > UNKNOWN_WARNING * predictor.seen:
        cause = likely_cause(predictor.unknown_sample, predictor.numericalize.vocab["tokens"].__contains__)
        share = f"{predictor.unknown / predictor.seen:.0%} of the {predictor.seen} input tokens"
        print(f"seqmodels-predict: warning: {share} are unknown to the model; likely cause: {cause}", file=sys.stderr)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """stdout, or ``path`` written beside it and renamed over it at the end: a failed run leaves no half file."""
    if path is None:
        yield _utf8(sys.stdout)
        return
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as file:
            yield file
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """The console script; every expected failure ends it with one line, ``seqmodels-predict: error: ...``."""
    args = parse_args(argv)
    try:
        model = load_model(args.checkpoint, args.device)
        check_output(args, model)
        write = WRITERS[args.format]
        if args.format == "conllu":
            write = functools.partial(format_conllu, field=ConlluTagField.parse(model.hparams.data_options["tag_column"]))
        with contextlib.ExitStack() as files:
            if args.text:
                lines, name = args.text, "argument"
            elif args.input:
                lines, name = files.enter_context(args.input.open(encoding="utf-8-sig")), str(args.input)
            else:
                lines, name = _utf8(sys.stdin), "<stdin>"
            output = files.enter_context(_output(args.output))
            if args.input_format == "text":
                sentences = read_text(lines, TOKENIZERS[args.tokenizer], name)
            else:
                sentences = read_blocks(lines, args.input_format, name)
            predict(Predictor(model, args.batch_size, args.max_tokens), sentences, write, output)
    except UnicodeDecodeError as error:
        where = _undecodable(args.input)
        raise SystemExit(f"seqmodels-predict: error: {where}: cannot decode as UTF-8 ({error.reason})") from None
    except (CheckpointError, InputError, OSError) as error:
        raise SystemExit(f"seqmodels-predict: error: {error}") from None


if __name__ == "__main__":
    main()
