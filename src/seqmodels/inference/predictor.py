"""Prediction from tokens: the one path that ``seqmodels-predict``, ``train.py predict`` and the server share.

:class:`Predictor` reads words as training did (the checkpoint's data options), cuts long sentences into
chunks, batches them, scores them with the model (or an exported graph standing in for its encoder and
heads) and decodes the scores with the model's heads (:meth:`SequenceModel.decode`), so every entry point
writes the same record per sentence: ``tokens`` and each head's fields (``tags`` with ``tag_probs`` or
``crf_path``, ``label`` with ``label_probs``).
"""

from __future__ import annotations

import functools
import itertools
import re
import string
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from seqmodels.data.batching import PadCollator
from seqmodels.data.readers import tokenize
from seqmodels.data.readers.common import token_problem
from seqmodels.data.encoding import Numericalizer
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.runs import cpu_runs_bf16_lstm

_SIMPLE_TOKEN = r"""
      (?:[^\W\d_]\.){2,}                                  # abbreviations stay whole: U.S. e.g.
    | (?-i:Mrs|Mr|Ms|Dr|Prof|Sr|Jr|St|Mt|Inc|Ltd|Corp|Co|vs|etc)\.(?!\w)  # and titles: Mr. Dr. St. Inc. etc.
    | \w+?(?=n't\b) | n't\b                              # don't -> do n't, can't -> ca n't
    | '(?:s|re|ve|ll|d|m)\b                               # it's -> it 's, we're -> we 're
    | \w+(?: [-.]\w+ | '(?!(?:s|re|ve|ll|d|m)\b)\w+ )*   # words: well-known, 3.5, o'clock
    | \S                                                 # anything else alone: punctuation, symbols, emoji
"""


@functools.cache
def _simple_token() -> re.Pattern[str]:
    """:data:`_SIMPLE_TOKEN` with combining marks (Unicode category M) as word characters, which ``\\w`` lacks: a
    "café" written with a combining accent, or a word in a script with vowel signs (Hindi), stays whole. Built on
    first use (a scan of Unicode, 0.2 s)."""
    marks = "".join(chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code))[0] == "M")
    word = f"[\\w{re.escape(marks)}]"
    return re.compile(_SIMPLE_TOKEN.replace("\\w", word), re.IGNORECASE | re.VERBOSE)


def simple_tokenize(text: str) -> list[str]:
    """Split punctuation and English clitics off words, PTB-style; a typographic apostrophe (’) counts as '."""
    return _simple_token().findall(text.replace("\u2019", "'"))


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": tokenize,  # pre-tokenized text, as the corpora are (ASCII whitespace; U+00A0 stays inside tokens)
    "simple": simple_tokenize,  # raw English text, split like the PTB-tokenized corpora
}
Scorer = Callable[..., dict[str, Tensor]]  # (token_ids, lengths[, char_ids, case_ids]) -> each head's scores
PRECISIONS = ("32", "bf16")  # bf16: the forward pass under autocast (docs/inference.md: bf16)
UNKNOWN_SAMPLE = 200  # unknown tokens kept to tell why they are unknown


class Predictor:
    """Batched prediction: lists of tokens in, one JSON-ready record per sentence out (``{}`` for no tokens).

    Sentences longer than ``max_tokens`` are cut into chunks, and at most ``batch_size`` chunks go through
    the model at once, so memory is bounded whatever the input; the chunks are batched by length (the records
    come back in input order), so that batches are not mostly padding; each head merges a sentence's chunks (tags
    one after the other, label probabilities averaged by chunk length). ``scorer`` replaces the model's own
    forward pass (e.g. an ONNX Runtime session); decoding is always the model's heads'. ``precision="bf16"`` runs
    the forward pass under bf16 autocast (faster on CPUs with bf16 instructions; the heads decode in fp32). ``seen`` and
    ``unknown`` count the input tokens and those the model has no embedding for. A token it cannot read (empty,
    or with a lone surrogate: :func:`~seqmodels.data.readers.common.token_problem`) is refused with a
    ``ValueError`` naming the sentence, before anything is predicted.
    """

    def __init__(
        self,
        model: SequenceModel,
        batch_size: int = 32,
        max_tokens: int = 512,
        scorer: Scorer | None = None,
        precision: str = "32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bf16" and model.device.type == "cpu" and not cpu_runs_bf16_lstm():
            raise ValueError("precision bf16 on the CPU needs bf16 instructions (AVX-512 BF16 or AMX) for the LSTM, "
                             "and this CPU has none; use 32")  # fmt: skip
        self.model, self.batch_size, self.max_tokens, self.precision = model, batch_size, max_tokens, precision
        self.scorer = scorer or model
        self.numericalize = Numericalizer(model.hparams.vocab, model.hparams.data_options["max_word_length"])
        self.collate = PadCollator()
        self.seen = self.unknown = 0
        self.unknown_sample: list[str] = []

    def __call__(self, sentences: list[list[str]]) -> list[dict[str, Any]]:
        for number, tokens in enumerate(sentences, start=1):
            if problem := token_problem(tokens):
                raise ValueError(f"sentence {number}: {problem}")
        chunks: list[list[str]] = []
        spans = []  # each sentence's chunks, as indices into `chunks`
        for tokens in sentences:
            starts = range(0, len(tokens), self.max_tokens)
            spans.append(range(len(chunks), len(chunks) + len(starts)))
            chunks += [tokens[start : start + self.max_tokens] for start in starts]
        # batches of chunks of similar lengths (longest first), so that little of each batch is padding
        by_length = sorted(range(len(chunks)), key=lambda i: -len(chunks[i]))
        decoded: list[dict[str, Any]] = [{}] * len(chunks)
        for start in range(0, len(chunks), self.batch_size):
            batch = by_length[start : start + self.batch_size]
            for i, fields in zip(batch, self._decode([chunks[i] for i in batch])):
                decoded[i] = fields
        return [self._merge([decoded[i] for i in span], [len(chunks[i]) for i in span]) for span in spans]

    @torch.inference_mode()
    def _decode(self, chunks: list[list[str]]) -> list[dict[str, Any]]:
        """Each chunk's fields, from every head."""
        encoded = self.numericalize({"tokens": chunks})
        self._count_unknown(chunks, encoded["token_ids"])
        batch = self.collate([dict(zip(encoded, values)) for values in zip(*encoded.values())])
        batch = {key: value.to(self.model.device) if key != "lengths" else value for key, value in batch.items()}
        with torch.autocast(self.model.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            scores = self.scorer(**batch)  # lengths stay on the CPU, as packing wants
        return self.model.decode({name: score.float() for name, score in scores.items()}, batch)

    def _merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """A sentence's record from its chunks' fields (``{}`` for a sentence without tokens)."""
        if len(parts) < 2:
            return parts[0] if parts else {}
        record: dict[str, Any] = {}
        for head in self.model.heads.values():
            record |= head.merge(parts, lengths)
        return record

    def _count_unknown(self, chunks: list[list[str]], token_ids: list[list[int]]) -> None:
        unk_id = self.numericalize.vocab["tokens"].unk_id
        self.seen += sum(len(chunk) for chunk in chunks)
        self.unknown += sum(ids.count(unk_id) for ids in token_ids)
        if len(self.unknown_sample) < UNKNOWN_SAMPLE:
            pairs = zip(itertools.chain(*chunks), itertools.chain(*token_ids))
            room = UNKNOWN_SAMPLE - len(self.unknown_sample)
            self.unknown_sample += [token for token, i in pairs if i == unk_id][:room]

    def unknown_cause(self) -> str:
        """Why the input's tokens are unknown, judged from the first of them: case, punctuation, or other text."""
        known = self.numericalize.vocab["tokens"].__contains__
        sample = self.unknown_sample
        by_case = sum(known(t.lower()) or known(t.capitalize()) for t in sample)
        by_punctuation = sum(known(t.strip(string.punctuation)) for t in sample if t.strip(string.punctuation) != t)
        if by_case >= max(by_punctuation, 0.25 * len(sample)):
            return "case: the training text had other capitalisation (e.g. lower-cased)"
        if by_punctuation >= 0.25 * len(sample):
            return "the tokenizer: punctuation is still attached to words (try --tokenizer simple)"
        return "another language or domain than the training data"
