"""What a run reports when it ends: the table of its final metrics, and the settings that apply to it (the
hyperparameters TensorBoard's HPARAMS tab shows beside those metrics)."""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace

from seqmodels.data.corpus import CORPUS_FIELDS, Corpus

OPTIMIZER_INTERNALS = ("foreach", "capturable", "differentiable", "fused")  # how it computes, not what
DATA_SETTINGS = ("batch_size", "bucket", "seed", "min_freq", "lowercase")


def run_hparams(config: Namespace) -> dict[str, Any]:
    """The settings that apply to this run's model and data, for TensorBoard's HPARAMS tab: the heads it has,
    the optimizer's and scheduler's arguments (not its implementation flags), the options its corpus reads."""
    model = {key: value for key, value in config.model.as_dict().items() if value is not None}
    for key in ("optimizer", "lr_scheduler"):
        if key in model:
            arguments = model[key].get("init_args", {})
            kept = {name: value for name, value in arguments.items() if value is not None}
            model[key] = {"class": model[key]["class_path"].rsplit(".", 1)[-1]} | {
                name: value for name, value in kept.items() if name not in OPTIMIZER_INTERNALS
            }
    data = config.data.as_dict()
    kept = {key: data[key] for key in DATA_SETTINGS}
    kept |= {key: data[key] for key in ("char_features", "max_word_length") if data["char_features"]}
    kept |= {"pretrained_embeddings": data["pretrained_embeddings"]} if data["pretrained_embeddings"] else {}
    if data["corpora"]:
        kept |= {"corpora": {name: Corpus(**corpus).options() for name, corpus in data["corpora"].items()}}
        kept |= {key: data[key] for key in ("mixing", "step")} | ({"temperature": data["temperature"]}
                                                                  if data["mixing"] == "temperature" else {})
    else:
        kept |= Corpus(**{key: data[key] for key in CORPUS_FIELDS}).options()
    trainer = {key: config.trainer[key] for key in ("max_epochs", "max_steps", "precision", "gradient_clip_val")}
    params = {"model": model, "data": kept, "trainer": trainer, "seed": config.seed_everything}
    if config.get("weight_averaging") is not None:  # e.g. {"class": "ExponentialMovingAverage", "decay": 0.999}
        averaging = config.weight_averaging.as_dict()
        params["weight_averaging"] = {"class": averaging["class_path"].rsplit(".", 1)[-1]} | averaging["init_args"]
    return params


def format_metrics(metrics: dict[str, float], heading: str = "") -> str:
    """A small table: one row per metric name, one column per stage (val, val_raw: the raw weights beside averaged
    ones, test)."""
    stages = [s for s in ("val", "val_raw", "test") if any(k.startswith(f"{s}/") for k in metrics)]
    names = sorted({k.split("/", 1)[1] for k in metrics})
    width = max([len(n) for n in names] + [6])
    lines = [heading] if heading else []
    lines.append(f"{'metric':<{width}}" + "".join(f"{s:>10}" for s in stages))
    for name in names:
        cells = (metrics.get(f"{stage}/{name}") for stage in stages)
        lines.append(f"{name:<{width}}" + "".join(f"{c:>10.4f}" if c is not None else f"{'-':>10}" for c in cells))
    return "\n".join(lines)
