"""What several test modules share as plain values and functions: the CoNLL-U sample, a small vocabulary, random
examples and padded batches, and the way every test runs a subprocess. Plain, so that ``pytest.mark.parametrize``
lists (built at collection), module-scoped fixtures and module helpers can use them; the fixtures are in
conftest.py.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from seqmodels.data.vocab import CASES, PAD, UNK

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TRAIN_PY = [sys.executable, str(ROOT / "train.py")]  # a command line's start: ``[*TRAIN_PY, "fit", ...]``

# ------------------------------------------------------------------------------------------- the CoNLL-U sample

# Two sentences with what a reader must get right: comment lines, a multiword range (2-3, no tag of its own), an
# empty node (4.1, not a token), a FORM with a space (New York), MISC attributes (SpaceAfter=No), capitalised
# words (I, It) and one adverb (fast, in sentence 2). Line 9 is the det line; the text ends with a blank line 20.
CONLLU = """\
# sent_id = 1
# text = I don't like the New York film.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tlike\tlike\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tliked\tlike\tVERB\tVBD\t_\t_\t_\t0:root\t_
5\tthe\tthe\tDET\tDT\t_\t7\tdet\t_\t_
6\tNew York\tNew York\tPROPN\tNNP\t_\t7\tcompound\t_\t_
7\tfilm\tfilm\tNOUN\tNN\t_\t4\tobj\t_\tSpaceAfter=No
8\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
# text = It runs fast.
1\tIt\tit\tPRON\tPRP\t_\t2\tnsubj\t_\t_
2\truns\trun\tVERB\tVBZ\t_\t0\troot\t_\t_
3\tfast\tfast\tADV\tRB\t_\t2\tadvmod\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

"""

# ----------------------------------------------------------------------------------- a small vocabulary and model

WORDS = ["the", "film", "was", "great", "dull", "i", "do", "n't", "like", "it", "."]
VOCAB = {
    "tokens": [PAD, UNK, *WORDS],
    "chars": [PAD, UNK, *sorted(set("".join(WORDS)))],
    "cases": CASES,
    "tags": ["ADJ", "AUX", "DET", "NOUN", "PART", "PRON", "PUNCT", "VERB"],
    "labels": ["negative", "positive"],
}
# The encoder's three kinds of directions, as model.encoder settings (parametrize a test over them by name).
DIRECTIONS = {"forward": {"bidirectional": False}, "bidirectional": {"bidirectional": True},
              "separate": {"bidirectional": True, "separate_directions": True}}  # fmt: skip
# Each size different from the others, so that a mixed-up dimension fails.
SIZES = {"embedding_dim": 6, "hidden_size": 5, "char_embedding_dim": 3, "char_channels": 4, "case_embedding_dim": 2}


def random_examples(n: int = 40, seed: int = 0) -> list[dict]:
    """``n`` encoded sentences over VOCAB (1-12 random words, a tag each, a label), as PadCollator takes them."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(1, 12)
        examples.append(
            {
                "token_ids": [rng.randrange(2, len(VOCAB["tokens"])) for _ in range(length)],
                "tagger": [rng.randrange(len(VOCAB["tags"])) for _ in range(length)],
                "classifier": rng.randrange(len(VOCAB["labels"])),
            }
        )
    return examples


def padded_batch(
    lengths: list[int], ids: range, pad_to: int | None = None, padding: int = 0, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Random ``ids`` up to each row's length, ``padding`` after (B, T), and the lengths; ``pad_to`` changes no id."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.full((len(lengths), pad_to or max(lengths)), padding)
    for row, n in enumerate(lengths):
        batch[row, :n] = torch.randint(ids.start, ids.stop, (n,), generator=generator)
    return batch, torch.tensor(lengths)


# ------------------------------------------------------------------------------------------------- subprocesses

CHILD_ENV = {"OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}  # one thread each: 2 CPU cores


def child_env() -> dict[str, str]:
    """This process's environment with CHILD_ENV: what every subprocess of the tests runs with."""
    return os.environ | CHILD_ENV


def run(command: list[str], cwd: Path, input: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` with child_env(), ``input`` on stdin (never the terminal), its output as text, in time."""
    return subprocess.run(command, cwd=cwd, env=child_env(), input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


class RecordCorpora(Callback):
    """Writes, per rank, the heads each training batch fed (its corpus's), to ``corpora_rank<N>.json`` in the
    working folder: what the two-corpus DDP test compares across ranks."""

    def __init__(self) -> None:
        self.steps: list[list[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append(list(batch["heads"]))

    def on_train_end(self, trainer, pl_module) -> None:
        Path(f"corpora_rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))
