"""The model card of a model folder (its ``README.md``), generated from the checkpoint and the run that wrote it.

The YAML metadata is ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData`, so it follows the Hub's
schema: ``library_name: seqmodels``, the pipeline tag, and a ``model-index`` entry per head and test metric. The
figures are read from the run's ``metrics_fit.json`` (the metrics of its best checkpoint, which ``train.py fit``
writes); with several runs of one config (``--seeds-from``), the body also gives their mean and spread.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from datasets import disable_progress_bars, enable_progress_bars
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from seqmodels.data.corpus import Corpus
from seqmodels.data.encoding import Numericalizer
from seqmodels.data.readers import read_split
from seqmodels.models.separate_directions import SeparateDirectionsLSTM
from seqmodels.models.sequence_model import SequenceModel

METRIC_TYPES = {"acc": "accuracy", "f1_macro": "f1", "f1": "f1", "pearson": "pearsonr", "spearman": "spearmanr",
                "mae": "mae", "perplexity": "perplexity"}  # fmt: skip


@dataclass
class CardOptions:
    """What the checkpoint does not record: ``--license``, ``--language``, ``--datasets``, ``--seeds-from``."""

    license: str | None = None
    language: list[str] | None = None
    datasets: list[str] | None = None
    seeds_from: list[Path] | None = None


def run_folder(checkpoint: Path) -> Path | None:
    """The run (``logs/NAME/version_N``) that wrote ``checkpoint`` (``.../checkpoints/X.ckpt``), if it is one."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def run_metrics(run: Path | None) -> dict[str, float]:
    """The run's logged validation and test metrics (its ``metrics_fit.json``), or none."""
    path = run / "metrics_fit.json" if run else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def wall_hours(run: Path | None) -> float | None:
    """Hours from the run's first TensorBoard event to its last, or None without event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    paths = sorted(run.glob("events.out.tfevents.*")) if run else []
    times = [event.wall_time for path in paths for event in EventFileLoader(str(path)).Load()]
    return (max(times) - min(times)) / 3600 if times else None


def unknown_rate(model: SequenceModel, data: dict[str, Any]) -> str:
    """The share of the config's test file's tokens the model has no embedding for, or why it is not known."""
    known = {field.name for field in fields(Corpus)}
    corpus = Corpus(**{key: value for key, value in data.items() if key in known})
    if corpus.format == "synthetic":
        return "not measured (the embedded synthetic corpus)"
    if not corpus.test_file or not Path(corpus.test_file).is_file():
        return f"not measured: the test file ({corpus.test_file or 'none'}) is not on this machine"
    with without_progress_bars():
        sentences = read_split(corpus, "test", None)["tokens"]
    numericalize = Numericalizer(model.hparams.vocab, model.hparams.data_options["max_word_length"])
    ids = numericalize({"tokens": sentences})["token_ids"]
    unk = numericalize.vocab["tokens"].unk_id
    total = sum(map(len, ids))
    return f"{100 * sum(sentence.count(unk) for sentence in ids) / max(1, total):.2f}% of {total:,} test tokens"


@contextlib.contextmanager
def without_progress_bars() -> Iterator[None]:
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


def eval_results(model: SequenceModel, metrics: dict[str, float], dataset: str) -> list[EvalResult]:
    """A ``model-index`` entry per head and test metric (the loss left out)."""
    results = []
    for name, head in model.heads.items():
        task = "token-classification" if head.reads == "outputs" else "text-classification"
        for key, value in metrics.items():
            split, _, rest = key.partition("/")
            head_name, _, metric = rest.rpartition("/")
            if split == "test" and head_name == name and metric != "loss":
                results.append(EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset,
                                          dataset_split="test", metric_type=METRIC_TYPES.get(metric, metric),
                                          metric_name=key, metric_value=round(value, 4)))  # fmt: skip
    return results


RAW_METRICS = ("loss", "mae", "perplexity")  # shown as they are; the others (accuracy, F1, correlations) in percent


def shown(key: str, value: float) -> float:
    return value if key.endswith(RAW_METRICS) else 100 * value


def metrics_table(metrics: dict[str, float], seeds: list[dict[str, float]]) -> str:
    """Validation and test metrics (see :func:`shown`), with the mean ± std of ``seeds`` if given."""
    header = ["metric", "this model", *([f"mean ± std of {len(seeds)} runs"] if seeds else [])]
    rows = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]

    for key, value in metrics.items():
        if key.startswith(("val/", "test/")):
            row = f"| `{key}` | {shown(key, value):.2f} |"
            values = [shown(key, run[key]) for run in seeds if key in run]
            if seeds:
                row += f" {statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} |" if len(values) > 1 else " |"
            rows.append(row)
    return "\n".join(rows)


def describe(model: SequenceModel) -> str:
    """The encoder and each head, in a few lines."""
    encoder, lstm = model.encoder, model.encoder.lstm
    direction = "bidirectional" if encoder.num_directions == 2 else "unidirectional"
    direction += " (two stacks whose directions never mix)" if isinstance(lstm, SeparateDirectionsLSTM) else ""
    chars = f", a {encoder.chars.description}" if encoder.chars is not None else ""
    parameters = sum(p.numel() for p in model.parameters())
    lines = [f"A {direction} {lstm.num_layers}-layer LSTM encoder (hidden size {lstm.hidden_size}, word "
             f"embeddings of {encoder.embedding.embedding_dim}{chars}) with {len(model.heads)} head(s); "
             f"{parameters:,} parameters.", ""]  # fmt: skip
    for name, head in model.heads.items():
        column = model.hparams.data_options["columns"].get(name, {}).get("column", "")
        classes = getattr(head, "classes", None) or []
        listed = ", ".join(f"`{c}`" for c in classes[:60]) + (f" ... ({len(classes)} in all)" * (len(classes) > 60))
        lines.append(f"- **{name}** ({type(head).name}{f', column {column}' if column else ''}): "
                     + (f"{len(classes)} classes: {listed}" if classes else "a number"))  # fmt: skip
    return "\n".join(lines)


def duration(hours: float) -> str:
    seconds = round(hours * 3600)
    return f"{hours:.2f} h" if seconds >= 3600 else f"{seconds // 60} min {seconds % 60} s"


def usage(repo: str) -> str:
    return f"""With seqmodels installed (`pip install -e .` in a clone of its repository):

```bash
seqmodels-predict {repo} --input sentences.txt --output predicted.jsonl   # or a .conllu file, or stdin
seqmodels-serve {repo}                                                    # HTTP, with a demo page at /
```

```python
from seqmodels.inference import Predictor, load_model

predictor = Predictor(load_model("{repo}"))
print(predictor([["The", "cat", "sat", "."]]))
```"""


def build_card(model: SequenceModel, checkpoint: dict[str, Any], path: Path, repo: str, options: CardOptions) -> str:
    """The model card (``README.md``) of the model of ``checkpoint`` (read from ``path``), as ``repo`` would be
    published: metadata first, then what it is, its labels, its training, its metrics, its use and its limits."""
    record = checkpoint.get("seqmodels", {})
    config = yaml.safe_load(record.get("config") or "{}") or {}
    data = config.get("data") or {}
    run = run_folder(path)
    metrics = run_metrics(run)
    seeds = [run_metrics(folder) for folder in options.seeds_from or []]
    train_file = Path(data.get("train_file") or "")
    corpus = "the embedded synthetic corpus" if data.get("format", "synthetic") == "synthetic" else train_file.name
    dataset = (options.datasets or [train_file.parent.name if data.get("train_file") else "synthetic"])[0]
    token_level = any(head.reads == "outputs" and type(head).name != "lm" for head in model.heads.values())
    card_data = ModelCardData(library_name="seqmodels", license=options.license, language=options.language,
                              datasets=options.datasets, model_name=repo, tags=["lstm", "seqmodels", "pytorch"],
                              pipeline_tag="token-classification" if token_level else "text-classification",
                              eval_results=eval_results(model, metrics, dataset) or None)  # fmt: skip
    hours = wall_hours(run)
    cased = "lower-cased, " if model.hparams.data_options["lowercase"] else ""
    trained = (f"{checkpoint.get('global_step', '?')} optimizer steps, to epoch {checkpoint.get('epoch', 0) + 1}"
               + (f", in {duration(hours)} of wall time" if hours is not None else "")
               + f", on {record.get('hardware', 'hardware the checkpoint does not record')}")  # fmt: skip
    figures = (f"The run's metrics, read from its log ({', '.join(RAW_METRICS)} as they are, the others in percent); "
               f"the validation metrics chose the checkpoint.\n\n{metrics_table(metrics, seeds)}" if metrics else
               "Not known: the checkpoint was exported from outside its run folder (logs/NAME/version_N, where "
               "train.py writes metrics_fit.json).")  # fmt: skip
    body = f"""# {repo}

{describe(model)}

## Training

Trained with seqmodels {record.get('version', '?')} (`python train.py fit --config config.yaml`, with the config
below): {trained}. Training data: {', '.join(options.datasets or []) or corpus or 'see the config'}.

<details><summary>The full config</summary>

```yaml
{(record.get('config') or '# not recorded (a checkpoint written before seqmodels 0.2)').strip()}
```
</details>

## Metrics

{figures}

## Use

{usage(repo)}

## Limits

- It knows the domain and the language of its training data only; text of another kind gets more unknown words.
- Unknown words (no embedding of their own): {unknown_rate(model, data)}.
- It expects tokens as its training data had them ({cased}split off punctuation, PTB-style for English): give
  token lists, CoNLL-U, or text with `--tokenizer simple`.
"""
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))
