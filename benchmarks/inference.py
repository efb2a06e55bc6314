"""Inference speed of each prediction backend on the UD and SST test sets, and int8's and bf16's accuracy change.

    python benchmarks/inference.py --data-dir ../shared/data --ud CHECKPOINT [--sst CHECKPOINT]

For each checkpoint (a UD tagger, a sentence classifier) and each backend of `seqmodels-predict
--backend` (PyTorch eager, TorchScript, ONNX Runtime, PyTorch with dynamic int8 quantisation), and PyTorch eager
with `--precision bf16` on CPUs with bf16 instructions, the tokens/s of `Predictor` over the test file's sentences
(batches of 32, file order, after an untimed pass that builds the export and warms the kernels up), as a ratio to
eager PyTorch; each one's test accuracy (UPOS accuracy, or label accuracy), whose change is int8's or bf16's cost;
and the share of its predictions equal to eager PyTorch's. One JSON line per row, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from seqmodels.data.readers.common import nonblank_lines, sentence_blocks, tokenize
from seqmodels.data.readers.conll import conllu_word
from seqmodels.inference.backends import BACKENDS, load_predictor
from seqmodels.runs import cpu_runs_bf16_lstm


def ud_test(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """The sentences and their UPOS tags."""
    numbered = enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
    words = [[f for n, line in block if (f := conllu_word(f"{path}:{n}", line))] for block in sentence_blocks(numbered)]
    return [[w[1] for w in s] for s in words], [[w[3] for w in s] for s in words]


def sst_test(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """The sentences and their labels, each in a list of one (``label text`` lines)."""
    lines = [tokenize(line) for _, line in nonblank_lines(str(path), "utf-8")]
    return [line[1:] for line in lines], [line[:1] for line in lines]


def measure(checkpoint: str, backend: str, precision: str, sentences: list[list[str]]) -> tuple[float, list[dict]]:
    predictor = load_predictor(checkpoint, backend, precision=precision)
    records = [r for i in range(0, len(sentences), 32) for r in predictor(sentences[i : i + 32])]  # warm-up
    start = time.perf_counter()
    records = [r for i in range(0, len(sentences), 32) for r in predictor(sentences[i : i + 32])]
    return sum(map(len, sentences)) / (time.perf_counter() - start), records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--ud", required=True, help="a checkpoint of configs/ud_upos.yaml")
    parser.add_argument("--sst", help="a checkpoint of configs/text_classification.yaml (stsa)")
    options = parser.parse_args()
    data = Path(options.data_dir)
    sets = {"ud": (options.ud, *ud_test(data / "ud_english_ewt" / "en_ewt-ud-test.conllu"))}
    if options.sst:
        sets["sst"] = (options.sst, *sst_test(data / "sst2" / "stsa.binary.test"))
    variants = [(backend, "32") for backend in BACKENDS] + ([("torch", "bf16")] if cpu_runs_bf16_lstm() else [])
    rows = []
    for name, (checkpoint, sentences, gold) in sets.items():
        eager = None
        for backend, precision in variants:
            speed, records = measure(checkpoint, backend, precision, sentences)
            # labels are 0/1 in the stsa file; the model's classes are those strings
            predicted = [r["tags"] if name == "ud" else [r["label"]] for r in records]
            eager = eager or (speed, predicted)
            pairs = [(p, g) for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)]
            same = [(p, e) for ps, es in zip(predicted, eager[1]) for p, e in zip(ps, es)]
            row = {"data": name, "backend": backend + (" bf16" if precision == "bf16" else ""),
                   "tokens_per_s": round(speed), "ratio": round(speed / eager[0], 3),
                   "accuracy": round(100 * sum(p == g for p, g in pairs) / len(pairs), 2),
                   "same_as_eager": round(sum(p == e for p, e in same) / len(same), 4)}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n{'data':<5} {'backend':<12} {'tokens/s':>9} {'x eager':>8} {'accuracy':>9} {'= eager':>8}")
    for r in rows:
        print(f"{r['data']:<5} {r['backend']:<12} {r['tokens_per_s']:>9} {r['ratio']:>8} {r['accuracy']:>9} "
              f"{r['same_as_eager']:>8}")


if __name__ == "__main__":
    main()
