"""The one place that turns configuration dataclass fields into command-line flags and flags back into configs.

A field's type gives the flag's parser: `int`, `float`, `str`, `Path`, `Optional[...]` of those, `Tuple[int, ...]`
(comma-separated), `bool` (a switch), and `Literal[...]` (its values are the flag's choices). Defaults come from
the dataclass, so `--help` always shows what a run without the flag uses.
"""
import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

Config = TypeVar("Config")


@dataclasses.dataclass(frozen=True)
class Flag:
  """One dataclass field offered as a flag; `name` defaults to the field name with dashes."""
  field: str
  name: Optional[str] = None
  help: Optional[str] = None


FlagSpec = Union[str, Flag]


def _as_flag(spec: FlagSpec) -> Flag:
  return spec if isinstance(spec, Flag) else Flag(spec)


def _comma_ints(text: str) -> Tuple[int, ...]:
  try:
    return tuple(int(value) for value in text.split(","))
  except ValueError as error:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,32,16, got {text!r}") from error


def _parser_for(annotation: Any) -> Tuple[Callable[[str], Any], Optional[Tuple[Any, ...]]]:
  """(parse function, choices) for a field's type annotation."""
  origin, args = typing.get_origin(annotation), typing.get_args(annotation)
  if origin is Union and type(None) in args:  # Optional[X]
    return _parser_for(next(a for a in args if a is not type(None)))
  if origin is typing.Literal:
    return type(args[0]), args
  if origin in (tuple, Tuple) and args[:1] == (int,):
    return _comma_ints, None
  if annotation in (int, float, str, Path):
    return annotation, None
  raise TypeError(f"no flag parser for a field of type {annotation!r}")


def add_flags(parser: Union[argparse.ArgumentParser, argparse._ArgumentGroup], config_type: Type[Any],
              specs: Sequence[FlagSpec], prefix: str) -> None:
  """Adds a flag for each field of `config_type` in `specs`; values land in `args.<prefix><field>`."""
  hints = typing.get_type_hints(config_type)
  defaults = config_type()
  for spec in map(_as_flag, specs):
    flag = "--" + (spec.name or spec.field.replace("_", "-"))
    default = getattr(defaults, spec.field)
    dest = prefix + spec.field
    if hints[spec.field] is bool:
      parser.add_argument(flag, dest=dest, action="store_true" if not default else "store_false", help=spec.help)
      continue
    parse, choices = _parser_for(hints[spec.field])
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    text = " ".join(part for part in (spec.help, None if default is None else f"(default {shown})") if part)
    parser.add_argument(flag, dest=dest, type=parse, choices=choices, default=default, help=text or None,
                        metavar=None if choices else spec.field.upper())


def from_flags(config_type: Type[Config], args: argparse.Namespace, specs: Sequence[FlagSpec], prefix: str,
               **overrides: Any) -> Config:
  """`config_type` with the fields of `specs` read from `args` (see add_flags) and `overrides` on top."""
  values: Dict[str, Any] = {spec.field: getattr(args, prefix + spec.field) for spec in map(_as_flag, specs)}
  return config_type(**{**values, **overrides})
