"""``seqmodels-predict``'s formats: sentences read from text, CoNLL-U or CoNLL, and each sentence's record
written as JSON Lines, CoNLL-U or CoNLL (the CoNLL input's own lines, with the predictions put in).

CoNLL-U and CoNLL are read with the training readers' own parsing (:mod:`seqmodels.data.readers`), so a file
gives the tokens it gave in training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from seqmodels.data.readers.common import sentence_blocks, token_problem
from seqmodels.data.readers.conll import ConlluTagField, conll_word, conllu_word


class InputError(ValueError):
    """Input that cannot be read as the chosen format, or an output format the model cannot fill."""


@dataclass
class Sentence:
    """One input sentence: its tokens, and for CoNLL input the lines it came from (written back with the tags)."""

    tokens: list[str]
    lines: list[str] = field(default_factory=list)
    where: str = ""  # "input:line", for warnings
    text: str = ""  # for text input, the line it was read from (without line breaks)


def _checked(sentence: Sentence) -> Sentence:
    """The sentence, if the model can read its tokens (:func:`token_problem`; arguments come through Python's
    ``surrogateescape``); else :class:`InputError` naming it."""
    if problem := token_problem(sentence.tokens, escaped=sentence.where.startswith("argument:")):
        raise InputError(f"{sentence.where}: {problem}")
    return sentence


def read_text(lines: Iterable[str], tokenizer: Callable[[str], list[str]], name: str) -> Iterator[Sentence]:
    """One sentence per line."""
    for number, line in enumerate(lines, start=1):
        text = " ".join(line.splitlines()).strip()  # an argument may hold line breaks; a CoNLL-U comment may not
        yield _checked(Sentence(tokenizer(line), where=f"{name}:{number}", text=text))


def read_blocks(lines: Iterable[str], input_format: str, name: str) -> Iterator[Sentence]:
    """CoNLL-U / CoNLL: a sentence per block of lines, its tokens from the word lines (the readers' own parsing)."""
    numbered = enumerate((line.rstrip("\r\n") for line in lines), start=1)
    for block in sentence_blocks(numbered):
        words = (_word(input_format, f"{name}:{number}", line) for number, line in block)
        tokens = [fields[1] if input_format == "conllu" else fields[0] for fields in words if fields]
        yield _checked(Sentence(tokens, [line for _, line in block], where=f"{name}:{block[0][0]}"))


def _word(input_format: str, where: str, line: str) -> list[str] | None:
    """A word line's fields, None for a line that is not a word (comments, ranges, ``-DOCSTART-``)."""
    return conllu_word(where, line) if input_format == "conllu" else conll_word(line)


def _tag_lines(lines: list[str], tags: list[Any], input_format: str, tag_line: Callable[[list[str], Any], str]) -> str:
    """The block with ``tag_line(fields, tag)`` in place of each word line, in order, and a blank line after it."""
    tag_iter = iter(tags)
    out = (tag_line(fields, next(tag_iter)) if (fields := _word(input_format, "", line)) else line for line in lines)
    return "".join(f"{line}\n" for line in out) + "\n"


def format_jsonl(sentence: Sentence, prediction: dict[str, Any]) -> str:
    return json.dumps({"tokens": sentence.tokens, **prediction}, ensure_ascii=False) + "\n"


def _with_comments(lines: list[str], comments: dict[str, str]) -> list[str]:
    """The block's lines with a ``# KEY = VALUE`` comment for each of ``comments`` after its leading comments, in
    place of any ``# KEY = ...`` it had."""
    kept = [line for line in lines if not line.startswith(tuple(f"# {key} =" for key in comments))]
    words = next((i for i, line in enumerate(kept) if not line.startswith("#")), len(kept))
    return [*kept[:words], *(f"# {key} = {value}" for key, value in comments.items()), *kept[words:]]


def format_conllu(
    sentence: Sentence, prediction: dict[str, Any], columns: list[tuple[ConlluTagField, str]], comments: list[str]
) -> str:
    """The CoNLL-U block with each ``(field, key)`` of ``columns``: ``prediction[key]`` (a head's values) in the
    column (or FEATS/MISC attribute) they came from in training; and each field of ``comments`` (``label``) as a
    comment (``# label = positive``). Text input gets a block of ``# sent_id`` (the line's number), ``# text`` and
    ID and FORM with the other columns ``_`` (so that the output can train a model: self-training on your own
    text); a line without tokens gets none."""
    if not sentence.lines and not sentence.tokens:
        return ""  # CoNLL-U has no empty sentence
    lines = sentence.lines or [
        f"# sent_id = {sentence.where.rpartition(':')[2]}",
        f"# text = {sentence.text}",
        *(f"{i}\t{token}" + "\t_" * 8 for i, token in enumerate(sentence.tokens, start=1)),
    ]
    lines = _with_comments(lines, {key: prediction[key] for key in comments if key in prediction})

    def set_values(fields: list[str], values: tuple[str, ...]) -> str:
        for (place, _), value in zip(columns, values):
            fields = place.set(fields, value)
        return "\t".join(fields)

    values = _per_word(prediction, [key for _, key in columns]) if columns else [()] * len(sentence.tokens)
    return _tag_lines(lines, values, "conllu", set_values)


def format_conll(sentence: Sentence, prediction: dict[str, Any], columns: list[str]) -> str:
    """The CoNLL block with each head's values (``prediction[key]`` for each of ``columns``) appended as new last
    columns (the line's own separator); text gets ``TOKEN<TAB>TAG`` lines."""
    values = _per_word(prediction, columns)
    if not sentence.lines:
        return "".join("\t".join([token, *tags]) + "\n" for token, tags in zip(sentence.tokens, values)) + "\n"
    lines = iter(line for line in sentence.lines if conll_word(line))  # the word lines, to keep their separator

    def append_columns(fields: list[str], tags: tuple[str, ...]) -> str:
        line = next(lines)
        separator = "\t" if "\t" in line else " "
        return separator.join([line, *tags])

    return _tag_lines(sentence.lines, values, "conll", append_columns)


def _per_word(prediction: dict[str, Any], keys: list[str]) -> list[tuple[str, ...]]:
    """Each word's values of the fields ``keys`` (none where the prediction lacks them)."""
    return list(zip(*(prediction.get(key, []) for key in keys)))


Writer = Callable[[Sentence, dict[str, Any]], str]
FORMATS = ("jsonl", "conllu", "conll")
