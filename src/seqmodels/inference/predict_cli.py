"""``seqmodels-predict``: a checkpoint alone tags and/or classifies sentences, streamed in batches.

``seqmodels-predict CHECKPOINT [TEXT ...] [--input FILE] [--output FILE] [--format jsonl|conllu|conll]
[--input-format text|conllu|conll] [--tokenizer whitespace|simple] [--batch-size N] [--max-tokens N]
[--backend B] [--precision 32|bf16]``
(options before or after the text).

Input: the TEXT arguments, else ``--input FILE``, else stdin; UTF-8; its format from its suffix (``.conllu``,
``.conll``; ``.txt`` or none: text) unless ``--input-format`` says. As text, one sentence per line, split by
``--tokenizer``; an empty line gives an empty prediction. As CoNLL-U / CoNLL, a sentence per block of lines,
its tokens the FORM (CoNLL-U: comments, ``3-4`` ranges and ``8.1`` empty nodes are not words) or the first
column (CoNLL: ``-DOCSTART-`` lines are not words), read by the same functions as training data.

Output, one record per sentence, in the format ``--format`` or ``--output``'s suffix names (else JSON Lines
for text input, the input's format for CoNLL input):

- ``jsonl``: ``"tokens"`` and each head's fields, named after it (``"upos", "upos_probs"`` for a head named
  ``upos``; ``"tags", "tag_probs"`` or ``"crf_path": true`` for ``tagger``; ``"label", "label_probs"``);
- ``conllu``: the input lines with each tagger's tags in the column they came from in training (UPOS, XPOS,
  DEPREL, ..., or a ``feats:KEY`` / ``misc:KEY`` attribute), and each sentence-level prediction as a
  ``# label = ...`` comment after the sentence's own comments (replacing one of that name), nothing else changed;
  text input gets ``# sent_id`` (its line's number), ``# text`` and ID and FORM, the other columns ``_`` (a file
  a model can train on); a classifier without a tagger writes its labels alone;
- ``conll``: the input lines with the tag appended as a new last column.

Output that cannot be right is refused in one line (tags from a model without a
tagger, a ``--format`` against ``--output``'s suffix), and so is a token the model cannot read, naming where it
is: an empty CoNLL-U FORM, an argument's byte that is not UTF-8, or a lone surrogate. A file output is
written beside its name and renamed when complete. A sentence longer than ``--max-tokens`` is predicted in
chunks (a warning says so); when more than 30% of the input tokens are unknown to the model, a warning names
the likely cause.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from seqmodels.data.readers.conll import ConlluTagField
from seqmodels.files import replacing
from seqmodels.inference.backends import BACKENDS, load_predictor
from seqmodels.inference.formats import (
    FORMATS,
    InputError,
    Sentence,
    Writer,
    format_conll,
    format_conllu,
    format_jsonl,
    read_blocks,
    read_text,
)
from seqmodels.inference.predictor import PRECISIONS, TOKENIZERS, Predictor
from seqmodels.models.sequence_model import SequenceModel

UNKNOWN_WARNING = 0.3  # warn when more of the input's tokens than this are unknown to the model
WINDOW_BATCHES = 64  # batches' worth of input sorted by length at once
INPUT_SUFFIXES = {".conllu": "conllu", ".conll": "conll", ".txt": "text", "": "text"}
OUTPUT_SUFFIXES = {".conllu": "conllu", ".conll": "conll", ".jsonl": "jsonl", ".json": "jsonl"}


def _batched(items: Iterable[Sentence], size: int) -> Iterator[list[Sentence]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _undecodable(path: Path) -> str:
    """Where input that is not UTF-8 is: ``FILE:LINE`` (the file read again, line by line)."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"{path}:{number}"
    return str(path)


def _utf8(stream: TextIO) -> TextIO:
    """stdout as UTF-8 whatever the locale says, so that any Unicode goes through."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8")
    return stream


def _stdin_lines() -> Iterator[str]:
    """stdin's lines as an --input file's are read: decoded as they come (a BOM at the start dropped), bytes that
    are not UTF-8 named by their line, and ``\r\n``, ``\r`` and ``\n`` each ending a line (universal newlines)."""
    for number, line in enumerate(sys.stdin.buffer, start=1):
        try:
            yield from io.StringIO(line.decode("utf-8-sig" if number == 1 else "utf-8"), newline=None)
        except UnicodeDecodeError as error:
            raise InputError(f"<stdin>:{number}: cannot decode as UTF-8 ({error.reason})") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the input and output formats inferred from the files' suffixes where not given."""
    parser = argparse.ArgumentParser(
        prog="seqmodels-predict",
        description="Tag and/or classify sentences with a seqmodels checkpoint (the .ckpt file alone).",
        allow_abbrev=False,  # --tok is an error, as in train.py, not --tokenizer
        epilog="Formats: the input's from its suffix (.conllu, .conll; .txt or none: text), the output's from "
        "its suffix (.conllu, .conll, .jsonl), else JSON Lines for text and the input's format for CoNLL. "
        "Tokenizers: whitespace splits on ASCII whitespace (pre-tokenized text, as the corpora are); "
        "simple also splits punctuation and English clitics PTB-style (don't -> do n't, film. -> film .), "
        "keeping abbreviations and titles whole (U.S., Mr.).",
    )
    parser.add_argument("checkpoint")
    parser.add_argument("text", nargs="*", metavar="TEXT", help="sentences (else --input, else stdin)")
    parser.add_argument("--input", type=Path, help="a UTF-8 file to read instead of stdin")
    parser.add_argument("--output", type=Path, help="where to write (default: stdout)")
    parser.add_argument("--input-format", choices=("text", "conllu", "conll"), help="default: from --input's suffix")
    parser.add_argument("--format", choices=FORMATS, help="default: from --output's suffix, else as said below")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="whitespace", help="for text input")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch")
    parser.add_argument("--max-tokens", type=int, default=512, help="longer sentences are predicted in chunks")
    parser.add_argument("--device", default="cpu", help="e.g. cpu, cuda, cuda:1")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="what computes the scores: the model, its int8 quantisation, or an export (made once, "
                        "beside the checkpoint); the model's heads decode them either way")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default="32",
                        help="bf16: the forward pass under bf16 autocast (the torch backend; on a CPU with bf16 "
                        "instructions, docs/inference.md: bf16)")  # fmt: skip
    args = parser.parse_intermixed_args(argv)  # options before or after the sentences
    if args.text and args.input:
        parser.error("give sentences as arguments or --input, not both")
    if args.batch_size < 1 or args.max_tokens < 1:
        parser.error("--batch-size and --max-tokens must be positive")
    if args.input_format is None:
        suffix = args.input.suffix.lower() if args.input else ""
        if suffix not in INPUT_SUFFIXES:
            parser.error(f"cannot tell the format of {args.input} from its suffix; "
                         "give --input-format text|conllu|conll")  # fmt: skip
        args.input_format = INPUT_SUFFIXES[suffix]
    implied = OUTPUT_SUFFIXES.get(args.output.suffix.lower()) if args.output else None
    if args.format and implied and args.format != implied:
        parser.error(f"--format {args.format} would write {args.format} into {args.output}; choose one")
    args.format = args.format or implied or ("jsonl" if args.input_format == "text" else args.input_format)
    if {args.format, args.input_format} == {"conllu", "conll"}:
        parser.error(f"cannot write {args.format} from {args.input_format} input")
    return args


def conllu_column(model: SequenceModel, head: str) -> str:
    """The CoNLL-U column (or FEATS/MISC attribute) a head's values came from in training, where they go back."""
    source = model.hparams.data_options["columns"].get(head)
    if source is None or source["format"] == "synthetic":  # the embedded corpus's tags are UPOS; so were 0.2.0's
        return "upos"
    if source["format"] != "conllu":
        raise InputError(
            f"the {head} head's values come from a {source['format']} corpus, not from a CoNLL-U column, so CoNLL-U "
            "output cannot say where they go; write --format jsonl or conll"
        )
    return source["column"] or "upos"


def writer(args: argparse.Namespace, model: SequenceModel) -> Writer:
    """What writes a record in ``args.format``, or :class:`InputError` naming the fix for output that cannot be
    right. CoNLL writes the field of each head with ``conllu = "column"`` (a tagger's), CoNLL-U also the field of
    each head with ``conllu = "comment"`` (a classifier's ``label``)."""
    heads = model.heads.items()
    columns = [(name, head.fields[0]) for name, head in heads if head.conllu == "column"]
    comments = [head.fields[0] for _, head in heads if head.conllu == "comment"]
    if args.format == "conll" and not columns:
        also = " or conllu (labels as comments)" if comments and args.input_format != "conll" else ""
        raise InputError(f"CoNLL output writes tags, but this model has no tagger; use --format jsonl{also}")
    if args.format == "conllu" and not columns + comments:
        raise InputError("--format conllu writes tags and labels, but this model has neither; use --format jsonl")
    if args.format != "conllu":
        keys = [key for _, key in columns]
        return functools.partial(format_conll, columns=keys) if args.format == "conll" else format_jsonl
    fields = [(ConlluTagField.parse(conllu_column(model, name)), key) for name, key in columns]
    return functools.partial(format_conllu, columns=fields, comments=comments)


def predict(predictor: Predictor, sentences: Iterable[Sentence], write: Writer, output: TextIO) -> None:
    """Predict a window of ``WINDOW_BATCHES`` batches at a time (the predictor batches each window's sentences by
    length), writing each window as soon as it is done: memory stays bounded on a stream. A bar on stderr when it
    is a terminal."""
    max_tokens = predictor.max_tokens
    progress = tqdm(sentences, unit=" sentences", file=sys.stderr, disable=not sys.stderr.isatty())
    for batch in _batched(progress, predictor.batch_size * WINDOW_BATCHES):
        for sentence in (s for s in batch if len(s.tokens) > max_tokens):
            n, chunks = len(sentence.tokens), -(-len(sentence.tokens) // max_tokens)  # ceil
            message = f"{n} tokens > --max-tokens {max_tokens}; predicted as {chunks} separate chunks"
            tqdm.write(f"seqmodels-predict: warning: {sentence.where}: {message}", file=sys.stderr)
        for sentence, prediction in zip(batch, predictor([s.tokens for s in batch])):
            output.write(write(sentence, prediction))
    if predictor.seen and predictor.unknown > UNKNOWN_WARNING * predictor.seen:
        cause = predictor.unknown_cause()
        share = f"{predictor.unknown / predictor.seen:.0%} of the {predictor.seen} input tokens"
        print(f"seqmodels-predict: warning: {share} are unknown to the model; likely cause: {cause}", file=sys.stderr)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """stdout, or ``path`` (:func:`~seqmodels.files.replacing`: a failed run leaves no half file)."""
    if path is None:
        yield _utf8(sys.stdout)
        return
    with replacing(path) as target, target.open("a", encoding="utf-8") as file:  # a stream is appended to
        yield file


def main(argv: list[str] | None = None) -> None:
    """The console script; every expected failure ends it with one line, ``seqmodels-predict: error: ...``."""
    args = parse_args(argv)
    try:
        predictor = load_predictor(args.checkpoint, args.backend, args.device, args.batch_size, args.max_tokens,
                                   args.precision)  # fmt: skip
        write = writer(args, predictor.model)
        with contextlib.ExitStack() as files:
            if args.text:
                lines, name = args.text, "argument"
            elif args.input:
                lines, name = files.enter_context(args.input.open(encoding="utf-8-sig")), str(args.input)
            else:
                lines, name = _stdin_lines(), "<stdin>"
            output = files.enter_context(_output(args.output))
            if args.input_format == "text":
                sentences = read_text(lines, TOKENIZERS[args.tokenizer], name)
            else:
                sentences = read_blocks(lines, args.input_format, name)
            predict(predictor, sentences, write, output)
    except BrokenPipeError:  # the reader stopped early (| head): quiet, as other command-line tools are
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        raise SystemExit(1) from None
    except UnicodeDecodeError as error:
        where = _undecodable(args.input)  # stdin's lines are decoded one by one (_stdin_lines)
        raise SystemExit(f"seqmodels-predict: error: {where}: cannot decode as UTF-8 ({error.reason})") from None
    except (ValueError, OSError) as error:  # CheckpointError, InputError, DataFormatError, a backend it cannot use
        raise SystemExit(f"seqmodels-predict: error: {error}") from None


if __name__ == "__main__":
    main()
