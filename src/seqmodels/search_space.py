"""A search space for ``tune.py``: a YAML file mapping ``train.py`` config keys to Optuna distributions, checked
whole before any study exists (see :mod:`seqmodels.tuning`).

Each distribution's fields are those of Optuna's classes (``{type: float, low, high, step, log}``,
``{type: int, low, high, step, log}``, ``{type: categorical, choices}``), and Optuna builds it, so what Optuna
refuses (``log`` with ``low <= 0`` or with a ``step``, ``low > high``) is refused here, in one line naming the
file and key, and so are an int distribution's bounds that are not whole numbers (Optuna would round them). Each
key is parsed by ``train.py`` at each of its choices, or at its ``low`` and ``high``, so that a value of a type
``train.py`` refuses stops the search before any trial; a key that ``train.py`` does not take gets the closest key
of the resolved config as a suggestion. The values a search found become a config file for ``train.py``
(:func:`best_config`).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import re
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial

from seqmodels.cli import main, resolved_config

KINDS: dict[str, type[BaseDistribution]] = {
    "float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution,
}  # fmt: skip


class TuneError(ValueError):
    """A search space, storage or trial that cannot work; the message is one line."""


class UsageError(TuneError):
    """An option that neither tune.py nor train.py takes: a mistake in tune.py's command line."""


def suggestion(word: str, candidates: list[str]) -> str:
    """``"; did you mean X?"`` for the candidate closest to ``word``, or nothing when none is close. Two letters
    swapped come first: difflib rates ``lgo`` as close to ``low`` as to ``log``."""
    close = [c for c in candidates if sorted(c) == sorted(word)] or difflib.get_close_matches(word, candidates, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def distribution(spec: Any, where: str) -> BaseDistribution:
    """The Optuna distribution ``spec`` describes; an unknown field, a missing one, or values Optuna refuses
    raise TuneError naming ``where``."""
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        found = spec.get("type") if isinstance(spec, dict) else spec
        hint = suggestion(found, list(KINDS)) if isinstance(found, str) else ""
        raise TuneError(f"{where}: expected {{type: float|int|categorical, ...}}, found {found!r}{hint}")
    kind = KINDS[spec["type"]]
    parameters = inspect.signature(kind).parameters
    fields = {key: value for key, value in spec.items() if key != "type"}
    unknown = [field for field in fields if field not in parameters]
    if unknown:
        hint = suggestion(unknown[0], list(parameters)) or f" (fields: {', '.join(['type', *parameters])})"
        raise TuneError(f"{where}: unknown field {unknown[0]!r} for a {spec['type']} distribution{hint}")
    missing = [name for name, parameter in parameters.items() if parameter.default is parameter.empty]
    if any(name not in fields for name in missing):
        raise TuneError(f"{where}: a {spec['type']} distribution needs {' and '.join(missing)}, found {spec!r}")
    if not isinstance(fields.get("choices", []), list):
        raise TuneError(f"{where}: expected a list of choices, found {fields['choices']!r}")
    if kind is IntDistribution:  # Optuna's int() would make 16.5 a 16, silently
        bound = next((name for name in ("low", "high", "step") if type(fields.get(name, 1)) is not int), None)
        if bound is not None:
            raise TuneError(f"{where}: an int distribution's {bound} must be a whole number, found {fields[bound]!r}")
    try:
        return kind(**fields)
    except (ValueError, TypeError) as error:  # Optuna's check: low <= high, log with low > 0 and no step, ...
        raise TuneError(f"{where}: {error}") from None


def load_space(path: Path) -> dict[str, BaseDistribution]:
    """The search space in ``path``, each key's distribution built and checked (see :func:`distribution`)."""
    try:
        space = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TuneError(f"cannot read the search space {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(space, dict) or not space:
        raise TuneError(f"{path}: expected config keys mapped to distributions, found {space!r}")
    return {key: distribution(spec, f"{path}: {key}") for key, spec in space.items()}


def sample(trial: Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The trial's value for each key of the search space."""
    values = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[key] = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def overrides(values: dict[str, Any]) -> list[str]:
    """``--key=value`` arguments for ``train.py``, each value as YAML (lists, null and booleans included)."""
    return [f"--{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in values.items()]  # fmt: skip


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"model.encoder.hidden_size": 128}`` -> ``{"model": {"encoder": {"hidden_size": 128}}}``: a config file."""
    config: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return config


def best_config(train_args: list[str], params: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """The best trial's values as a config to give after the task's own. A searched key inside a dict section
    (``model.encoder``, a head) brings the whole section as the trial resolved it: a later config replaces a
    dict whole, so a file with only ``model.encoder.dropout`` would drop the encoder's other settings (its
    layers, its character CNN). Classes (``class_path``: the optimizer) and plain keys merge key by key."""
    config = resolved_config([*train_args, *overrides(params)], config_dir)
    values = {}
    for key, value in params.items():
        section_key = ".".join(key.split(".")[:2])
        section = config
        for part in section_key.split("."):
            section = section[part]
        whole = isinstance(section, dict) and "class_path" not in section and section_key != key
        values.update({section_key: section} if whole else {key: value})
    return nested(values)


def dotted_keys(config: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of a nested config, dotted: ``model``, ``model.encoder``, ``model.encoder.hidden_size``, ..."""
    keys = []
    for key, value in config.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


def train_error(text: str) -> str:
    """train.py's one-line error in ``text`` (what it writes on stderr), less its ``PROG: error:`` and its pointer
    to ``tune.py fit --help`` (a command that does not exist); ``""`` when there is none."""
    errors = [line.split("error: ", 1)[1] for line in text.splitlines() if "error: " in line]
    return re.sub(r" \(see [^()]* --help\)$", "", errors[0]) if errors else ""


def printed_config(train_args: list[str], config_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The config ``train.py fit ARGS`` would run, and ``""``; or None and train.py's one-line error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        main(["fit", *train_args, "--print_config"], config_dir)
    error = train_error(err.getvalue())
    return (None, error) if error else (yaml.safe_load(out.getvalue()), "")


def probes(dist: BaseDistribution) -> list[Any]:
    """The values of ``dist`` whose types tell whether train.py takes them all: its choices, or its bounds."""
    return list(dist.choices) if isinstance(dist, CategoricalDistribution) else [dist.low, dist.high]


def check_keys(
    train_args: list[str], space: dict[str, BaseDistribution], path: Path, config: dict[str, Any], config_dir: Path
) -> None:
    """Parse the training command with each key at each of its :func:`probes`, as train.py would, and then with
    every key at its first: a key train.py does not take (with the closest key of ``config``, the resolved config)
    or a value of a type it refuses fails here, in one line naming the search space, before any study exists. A
    key not in ``config`` may still be one train.py takes (an optional key left unset): the parse tells."""
    known = dotted_keys(config)
    for key, dist in space.items():
        for value in probes(dist):
            _, error = printed_config([*train_args, *overrides({key: value})], config_dir)
            if error and key not in known:  # the parser's own hint names an option; ours names the closest key
                raise TuneError(f"{path}: {key}: {error.split('; did you mean')[0]}{suggestion(key, known)}")
            if error:
                raise TuneError(f"{path}: {key} = {value!r}: {error}")
    _, error = printed_config([*train_args, *overrides({key: probes(d)[0] for key, d in space.items()})], config_dir)
    if error:
        raise TuneError(f"{path}: {error}")
