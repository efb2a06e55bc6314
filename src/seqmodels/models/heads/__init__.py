"""The task heads, by name: the registry that configs (``model.<name>``) and checkpoints build heads from.

A head registers itself with :func:`register_head` when its module is imported. Every module in this folder
is imported here, so adding a task is adding one file; a head defined elsewhere (a test, your own package)
registers the same way once imported.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from seqmodels.data.fields import Field
from seqmodels.data.vocab import Vocabulary
from seqmodels.models.encoder import LSTMEncoder
from seqmodels.models.heads.base import TaskHead

HEADS: dict[str, type[TaskHead]] = {}


# batch keys, and the names of logged values that are no head's
RESERVED = {"tokens", "token_ids", "char_ids", "case_ids", "lengths", "heads", "targets", "multitask", "adversarial"}
INSTANCE_KEYS = ("type", "column", "unseen")  # a head instance's config keys that are not its class's arguments


def register_head(head: type[TaskHead]) -> type[TaskHead]:
    """Make ``head`` buildable by its ``name``, the type configs give (a class decorator); a name is taken once,
    and the class sets every class attribute :class:`TaskHead` lists."""
    missing = [attribute for attribute in TaskHead.__annotations__ if not hasattr(head, attribute)]
    if missing:
        raise TypeError(f"{head.__qualname__} does not set {', '.join(missing)} (class attributes; see TaskHead)")
    if HEADS.get(head.name, head) is not head:
        raise ValueError(f"a head named {head.name!r} is already registered ({HEADS[head.name].__qualname__})")
    HEADS[head.name] = head
    return head


def head_type(name: str, config: dict[str, Any]) -> type[TaskHead]:
    """The class of the head instance ``name``: its ``type`` (by default its name), a registered type or the
    import path of a :class:`TaskHead` (``my_package.heads.LengthHead``, imported here, so that every command
    builds it); one line listing the types otherwise, or naming a key the type does not take."""
    kind = config.get("type", name)
    if kind not in HEADS and "." in str(kind):
        importable(name, str(kind))
    if kind not in HEADS:
        missing = "" if "type" in config else (" (the head gives no type, so its name is taken for one; on the command"
                                               f" line, --model.heads.{name}.KEY=VALUE replaces the head's whole entry:"
                                               f" give it whole, --model.heads.{name}='{{type: ..., KEY: VALUE}}')")
        raise ValueError(f"the {name} head: no head type is registered as {kind!r}{missing}; the registered types "
                         f"are {sorted(HEADS)}, or give a TaskHead's import path (package.module.Class)")  # fmt: skip
    head = HEADS[kind]
    parameters = inspect.signature(head.__init__).parameters
    taken = set(parameters) - {"self", "input_size", "classes"} | set(INSTANCE_KEYS)
    open_ended = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values())  # **options
    if not open_ended and (unknown := sorted(set(config) - taken)):
        raise ValueError(f"the {name} head: unknown key {unknown[0]!r} for a {head.name} head (it takes "
                         f"{', '.join(sorted(taken))})")  # fmt: skip
    return head


def importable(name: str, path: str) -> None:
    """Import the module of the head class at ``path`` and register the class under ``path``."""
    module, _, attribute = path.rpartition(".")
    try:
        head = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"the {name} head: cannot import its type {path} ({error})") from None
    if not (isinstance(head, type) and issubclass(head, TaskHead)):
        raise ValueError(f"the {name} head: {path} is not a TaskHead")
    HEADS.setdefault(path, head)


def head_field(name: str, config: dict[str, Any]) -> Field:
    """What the data path reads for the head instance ``name``: its column (``column``, by default its type's), a
    value per token or per sentence, encoded as its type's ``target`` says."""
    head = head_type(name, config)
    level = "token" if head.reads == "outputs" else "sentence"
    return Field(name, config.get("column", head.column), level, head.target, config.get("unseen", "error"))


def build_head(name: str, config: dict[str, Any], field: Field, vocabularies: dict[str, Vocabulary],
               encoder: LSTMEncoder) -> TaskHead:
    """The head instance ``name`` on ``encoder``: its type's class, with its classes from the vocabularies (the one
    named after it; a checkpoint of 0.3 names it after the type's ``vocab_name``), unless it has its own. A value
    its class refuses is refused in one line naming the head."""
    head = head_type(name, config)
    wanted = [name, head.vocab_name] if field.column is not None and head.target == "classes" else [head.vocab_name]
    found = next((vocab for vocab in wanted if vocab in vocabularies), None)
    if found is None and wanted != [None]:
        raise ValueError(f"the {name} head needs its classes ('{name}') in the vocabularies; the data has "
                         f"{list(vocabularies)}")  # fmt: skip
    classes = vocabularies[found].itos if found is not None else None
    arguments = {key: value for key, value in config.items() if key not in INSTANCE_KEYS}
    try:
        return head.from_encoder(encoder, classes, **arguments).named(name, field.column)
    except ValueError as error:  # a value its class refuses (its own checks), said of this instance
        raise ValueError(f"the {name} head: {error}") from None


def check_outputs(configs: dict[str, dict[str, Any]]) -> None:
    """Refuse two head instances that would write the same field of the prediction records (one would overwrite the
    other's in every record) or both fill one CoNLL-U column, in one line naming both. Their export outputs are
    named after them, so those are distinct already."""
    writers: dict[str, str] = {}
    for name, config in configs.items():
        head = head_type(name, config)
        places = [f"the prediction field {field!r}" for field in head.record_fields(name)]
        places += [f"the CoNLL-U column {config.get('column', head.column)!r}"] if head.conllu == "column" else []
        for place in places:
            if place in writers:
                remedy = "its own column" if "CoNLL-U" in place else "its own name"
                raise ValueError(f"the {writers[place]} and {name} heads would both write {place}; a head writes "
                                 f"only its own (give each {remedy})")  # fmt: skip
            writers[place] = name


for _module in pkgutil.iter_modules(__path__):  # each head's module registers it: tagger, classifier, ...
    importlib.import_module(f"{__name__}.{_module.name}")


def head_configs(heads: dict[str, dict[str, Any]] | None = None, **named: dict[str, Any] | None) -> dict[str, dict]:
    """The heads to build, by name: ``heads``, and the 0.3 config keys (``tagger``, ``classifier``, ``lm``: heads of
    that name and type), checked (configured once, a name free for a head, a registered type)."""
    configs = {name: {"type": name, **config} for name, config in named.items() if config is not None}
    for name, config in (heads or {}).items():
        if name in configs:
            raise ValueError(f"the {name} head is configured twice: under model.{name} and model.heads.{name}")
        configs[name] = dict(config or {})
    if not configs:
        raise ValueError("the model needs at least one head: set model.heads (or model.tagger, model.classifier)")
    for name, config in configs.items():
        if name in RESERVED or "/" in name:
            raise ValueError(f"model.heads.{name}: a head cannot be named {name!r} (the batches and metrics use "
                             f"{sorted(RESERVED)} and '/')")  # fmt: skip
        head_type(name, config)
    check_outputs(configs)
    return configs


__all__ = ["HEADS", "INSTANCE_KEYS", "RESERVED", "TaskHead", "build_head", "check_outputs", "head_configs",
           "head_field", "head_type", "register_head"]
