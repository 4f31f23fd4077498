"""Command-line support shared by the five scripts: parsing, range checks, output guards, errors.

Lives here, once:
- `REPO_ROOT`: the repository root (this file's folder), the scripts' default model and tokenizer
  and where data/ lives.
- `ScriptParser`: transformers' `HfArgumentParser` (every default written once, in a dataclass)
  plus positional arguments for fields marked `positional(...)`; both `--foo_bar` and `--foo-bar`
  spellings work (HfArgumentParser adds the dashed alias).
- Numeric ranges declared once in the field metadata (`field(default=..., metadata=at_least(1))`)
  and checked up front, before any file is read; `TRAINING_RANGES` holds the ranges of the
  transformers `TrainingArguments` flags the scripts use.
- The overwrite guard (`--overwrite`): an existing output file, or a non-empty run folder, is
  refused unless the user asks for it. Resuming is not overwriting (the scripts say when).
- Strict model loading: `load_pretrained` refuses a checkpoint whose encoder weights do not match
  the config (missing, unexpected or wrongly shaped keys), so a model is never silently half-random.
- `run(main)`: ends a script with exactly one line `script.py: error: ...` (exit 1 for data
  errors, 2 for usage errors), never a traceback for bad input.
Not here: reading data (genome_io, gue), model code, or any script's own logic.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import math
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from transformers import HfArgumentParser

# Field-metadata keys of this module; they are removed before argparse sees the metadata.
_RANGE, _POSITIONAL = "range", "positional"
EXIT_DATA_ERROR, EXIT_USAGE = 1, 2
REPO_ROOT: str = os.path.dirname(os.path.abspath(__file__))


class UsageError(ValueError):
    """A flag value or combination the script cannot use (exit code 2)."""


class ModelLoadingError(ValueError):
    """A checkpoint whose weights do not match its config."""


# --- ranges ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def at_least(low: float, help: str | None = None, **metadata) -> dict:
    """Field metadata: the value (or every list element) must be >= low."""
    return _meta(Range(low), help, metadata)


def above(low: float, help: str | None = None, **metadata) -> dict:
    return _meta(Range(low, low_open=True), help, metadata)


def within(low: float, high: float, help: str | None = None, low_open: bool = False, high_open: bool = False,
           **metadata) -> dict:
    return _meta(Range(low, high, low_open, high_open), help, metadata)


def _meta(rng: Range, help: str | None, metadata: dict) -> dict:
    out = dict(metadata, **{_RANGE: rng})
    if help is not None:
        out["help"] = help
    return out


def positional(nargs: str | None = None, help: str | None = None) -> dict:
    """Field metadata: also accept the value as a positional argument (nargs "?" or "*")."""
    return {_POSITIONAL: nargs or "?", **({"help": help} if help else {})}


# Ranges of the transformers TrainingArguments flags (-1 means "unset" where transformers says so).
TRAINING_RANGES: dict[str, Range] = {
    "learning_rate": Range(0, low_open=True),
    "per_device_train_batch_size": Range(1),
    "per_device_eval_batch_size": Range(1),
    "gradient_accumulation_steps": Range(1),
    "num_train_epochs": Range(0, low_open=True),
    "max_steps": Range(-1),
    "warmup_steps": Range(0),
    "weight_decay": Range(0),
    "max_grad_norm": Range(0),
    "logging_steps": Range(0, low_open=True),
    "eval_steps": Range(0, low_open=True),
    "save_steps": Range(0, low_open=True),
    "seed": Range(0),
    "dataloader_num_workers": Range(0),
}
_EXCLUDED = {("max_steps", 0): " other than 0 (-1: use num_train_epochs)"}  # values inside a range that mean nothing


def check_ranges(*args) -> None:
    """Refuse any field value outside its declared range (UsageError naming flag, value and range)."""
    for obj in args:
        if not dataclasses.is_dataclass(obj):
            continue
        for f in dataclasses.fields(obj):
            rng = f.metadata.get(_RANGE) or (TRAINING_RANGES.get(f.name) if _is_training_args(obj) else None)
            value = getattr(obj, f.name, None)
            if rng is None or value is None or isinstance(value, bool):
                continue
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, (int, float)) and (v not in rng or (f.name, v) in _EXCLUDED):
                    raise UsageError(f"--{f.name} {v!r} is out of range: expected a value {rng}{_EXCLUDED.get((f.name, v), '')}")


def _is_training_args(obj) -> bool:
    """A transformers TrainingArguments (or subclass), told without importing the Trainer stack."""
    return any(cls.__name__ == "TrainingArguments" for cls in type(obj).__mro__)


# --- parsing -----------------------------------------------------------------------------------

@dataclass
class OutputArguments:
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file or run folder"})


class ScriptParser(HfArgumentParser):
    """HfArgumentParser that also takes positional arguments and this module's range metadata."""

    def __init__(self, dataclass_types, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(dataclass_types, **kwargs)
        self._positional = []
        for dtype in self.dataclass_types:
            for f in dataclasses.fields(dtype):
                if _POSITIONAL in f.metadata:
                    dest = f"_positional_{f.name}"
                    self.add_argument(dest, nargs=f.metadata[_POSITIONAL], metavar=f.name.upper(),
                                      default=None, help=f"same as --{f.name}")
                    self._positional.append((f.name, dest))

    @staticmethod
    def _parse_dataclass_field(parser, f: dataclasses.Field):
        own = {_RANGE, _POSITIONAL}
        if own & set(f.metadata):
            f = copy.copy(f)
            rng = f.metadata.get(_RANGE)
            meta = {k: v for k, v in f.metadata.items() if k not in own}
            if rng is not None:
                meta["help"] = f"{meta.get('help', '')} (value {rng})".strip()
            if _POSITIONAL in f.metadata and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                f.default = None  # required, but may come as a positional argument: checked after parsing
            f.metadata = types.MappingProxyType(meta)
        HfArgumentParser._parse_dataclass_field(parser, f)

    def parse(self, argv: list[str] | None = None) -> tuple:
        """Parse into the dataclasses (in order), merge positionals, check ranges; usage errors exit 2."""
        argv = sys.argv[1:] if argv is None else list(argv)
        namespace, remaining = self.parse_known_args(argv)
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        for name, dest in self._positional:
            value = getattr(namespace, dest)
            delattr(namespace, dest)
            if value in (None, []):
                continue
            given = getattr(namespace, name)
            if given not in (None, []) and given != self.get_default(name):
                self.error(f"{name} given twice (as a positional argument and as --{name})")
            setattr(namespace, name, value)
        outputs = []
        for dtype in self.dataclass_types:
            fields = [f for f in dataclasses.fields(dtype) if f.init]
            missing = [f.name for f in fields if getattr(namespace, f.name, None) is None
                       and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            if missing:
                self.error(f"the following arguments are required: {', '.join(missing)}")
            inputs = {f.name: getattr(namespace, f.name) for f in fields if hasattr(namespace, f.name)}
            try:
                outputs.append(dtype(**inputs))
            except ValueError as e:  # a dataclass __post_init__ (e.g. TrainingArguments) refusing a value
                self.error(_one_line(e))
        check_ranges(*outputs)  # UsageError: one line, exit 2 under run()
        return tuple(outputs)


# --- outputs -----------------------------------------------------------------------------------

def refuse_existing_file(path: str, overwrite: bool) -> None:
    """An existing output file is replaced only with --overwrite."""
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, expected an output file name")
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it")


def refuse_nonempty_folder(path: str, overwrite: bool, what: str = "output folder",
                           names: Iterable[str] | None = None) -> None:
    """A run folder that holds files (or, with `names`, any of these files) is reused only with --overwrite."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{path}: is a file, expected a folder for the {what}")
    if overwrite or not os.path.isdir(path):
        return
    present = sorted(os.listdir(path)) if names is None else sorted(n for n in names if os.path.exists(os.path.join(path, n)))
    if present:
        shown = ", ".join(present[:4]) + (" ..." if len(present) > 4 else "")
        raise UsageError(f"{what} {path} already holds {shown}; pass --overwrite to replace it")


@contextlib.contextmanager
def no_empty_folder_left(folder: str):
    """On failure, remove `folder` if this run created it and it holds no file (only empty folders)."""
    existed = os.path.exists(folder)
    try:
        yield
    except BaseException:
        if not existed and os.path.isdir(folder) and not any(files for _, _, files in os.walk(folder)):
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        raise


def require_file(path: str, what: str = "input") -> None:
    """A readable file; a folder or a missing path is 'not found' naming the path."""
    if os.path.isdir(path):
        raise FileNotFoundError(f"{path}: {what} not found: this is a folder, expected a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file ({what} not found)")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def require_model(path: str, marker: str = "config.json", what: str = "model") -> None:
    """A folder with `marker`, or something that can be a Hub id; else '<what> not found'.

    A local path that does not exist is not sent to the Hub when it cannot be a Hub id (it starts
    with '.' or '/', has more than one '/', or ends like a file name).
    """
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, marker)):
            raise FileNotFoundError(f"{path}: {what} not found: the folder has no {marker}")
        return
    if os.path.exists(path):
        raise FileNotFoundError(f"{path}: {what} not found: this is a file, expected a {what} folder or Hub id")
    if not _HUB_ID.match(path) or path.startswith((".", "/")) or path.endswith((".json", ".safetensors", ".bin")):
        raise FileNotFoundError(f"{path}: {what} not found: no such folder, and not a Hub id (ORG/NAME)")


# --- models ------------------------------------------------------------------------------------

ENCODER_PREFIXES = ("embeddings.", "encoder.")


def _encoder_key(key: str) -> bool:
    return key.removeprefix("bert.").startswith(ENCODER_PREFIXES)


def load_pretrained(model_class, path: str, **kwargs):
    """`model_class.from_pretrained(path, **kwargs)`, refusing a checkpoint whose encoder does not match.

    Heads the checkpoint has beyond the model (e.g. the MLM head for an encoder) and new heads
    (a classifier, a pooler) are expected; any missing, unexpected or wrongly shaped encoder key
    (a config with another layer count than the weights, renamed weights) is a ModelLoadingError.
    """
    require_model(path)
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the expected extras would be reported as warnings; we check ourselves
    bar = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        try:
            model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
        except (OSError, EnvironmentError) as e:
            raise FileNotFoundError(f"{path}: model not found ({_one_line(e)[:300]})") from None
        except RuntimeError as e:  # size mismatches
            raise ModelLoadingError(f"{path}: the weights do not fit the config: {_one_line(e)[:500]}") from None
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()
    problems = []
    for title in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(title, ()) if _encoder_key(str(k if isinstance(k, str) else k[0])))
        if keys:
            problems.append(f"{len(keys)} {title.replace('_', ' ')} ({', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''})")
    if problems:
        raise ModelLoadingError(
            f"{path}: the encoder weights do not match config.json (num_hidden_layers="
            f"{model.config.num_hidden_layers}): {'; '.join(problems)}"
        )
    return model


MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json")


def model_fingerprint(path: str) -> dict:
    """Size and mtime of the files that decide a model's outputs (config, weights, tokenizer).

    A Hub id is fingerprinted through its snapshot in the local cache (the folder name is the
    commit), or by its name when it is not cached yet.
    """
    from dnabert2.chunked_output import file_fingerprint

    folder = path
    if not os.path.isdir(path):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(path, "config.json")
        except Exception:  # not a valid repo id: require_model reports it
            cached = None
        if not isinstance(cached, str):
            return {"hub_id": path}
        folder = os.path.dirname(cached)
    return {name: file_fingerprint(os.path.join(folder, name)) for name in MODEL_FILES
            if os.path.isfile(os.path.join(folder, name))}


# --- ending a script ---------------------------------------------------------------------------

def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _close_progress_bars() -> None:
    """Close open tqdm bars (e.g. Trainer's) now, so that none redraws after the error line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


def _fail(prog: str, error: BaseException, code: int) -> None:
    _close_progress_bars()
    sys.stdout.flush()
    print(f"{prog}: error: {_one_line(error)}", file=sys.stderr, flush=True)
    sys.exit(code)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Call main and exit: 0, or one line `script.py: error: ...` with exit 1 (data) or 2 (usage)."""
    prog = os.path.basename(sys.argv[0]) or "script"
    try:
        code = main(argv)
    except UsageError as e:
        _fail(prog, e, EXIT_USAGE)
    except (ValueError, OSError, RuntimeError, EOFError, KeyError) as e:
        _fail(prog, e, EXIT_DATA_ERROR)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


def write_files_into(folder: str, write: Callable[[str], None]) -> list[str]:
    """Call `write(tmp)` on an empty temporary folder inside `folder`, then move each file it wrote
    into `folder` (os.replace, one rename per file): a failed write leaves no file behind."""
    import shutil
    import tempfile

    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
    try:
        write(tmp)
        names = sorted(os.listdir(tmp))
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(folder, name))
        return names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_folder(tmp: str, output: str) -> None:
    """Put the finished folder `tmp` at `output` by renames only; an old `output` (allowed by
    --overwrite) is moved aside first and removed only after the new folder is in place."""
    import shutil

    old = None
    if os.path.exists(output):
        old = f"{output.rstrip(os.sep)}.old-{os.getpid()}"
        os.replace(output, old)
    try:
        os.replace(tmp, output)
    except OSError:
        if old:
            os.replace(old, output)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
