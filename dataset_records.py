"""Pretraining records from a `datasets` source: a Hub id, a local folder or Parquet/JSON/CSV/text files.

Lives here: opening the source as a streaming IterableDataset (`streaming=True`; split across
torchrun processes with datasets.distributed.split_dataset_by_node), the sequence-column checks
(errors name the column, the dataset and the allowed columns), the record index of one pass
(length, held-out flag), cached like a FASTA record index when the source is local files, and
`DatasetSource`, the `datasets` side of pretraining_data.RecordSource.
Not here: crops, reverse complements, the N filter, masking or batching (pretraining_data.py: one
pipeline for FASTA and `datasets`), reading FASTA (genome_io.py), Trainer glue (pretrain.py).

Conventions
- Every row is one record; its sequence is validated and made canonical exactly as a FASTA record
  (genome_io.check_sequence: IUPAC letters, upper case, U read as T, ambiguity codes read as N).
- The whole source is one key for `--sampling` (one "genome file").
- Held out (no `--eval_split`): the records whose sequence hash falls in the first `eval_fraction`
  of [0, 1) (sha1 of the canonical sequence): deterministic, independent of row order and of the
  number of processes. With an eval split every record of that split is held out.
- Rows are read with `IterableDataset.iter(batch_size)`, which does not re-shard inside DataLoader
  workers (iterating the dataset itself would give each worker only some shards): each worker
  reads every record of its process and takes every k-th batch group, as on the FASTA path.
"""

import functools
import glob
import hashlib
import logging
import os
from collections.abc import Iterator

from .genome_io import GenomeFormatError, cached_index, check_sequence, file_key
from .pretraining_data import Regions, RecordSpan, check_usable

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".txt": "text"}
STRING_DTYPES = ("string", "large_string")
_READ_BATCH = 256  # rows per Arrow batch read


def held_out_share(sequence: str) -> float:
    """A number in [0, 1) fixed by the sequence: the record is held out when it is below eval_fraction."""
    return int.from_bytes(hashlib.sha1(sequence.encode()).digest()[:8], "big") / 2**64


def open_streaming(name: str, config: str | None, split: str):
    """`name` as a streaming IterableDataset of split `split`.

    `name`: a save_to_disk folder; a file or glob of .parquet/.json/.jsonl/.csv/.tsv/.txt files; a
    local folder of such files; or a Hub id (offline: read from the `datasets` cache).
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    if os.path.isdir(name) and any(os.path.isfile(os.path.join(name, f)) for f in ("state.json", "dataset_dict.json")):
        saved = load_from_disk(name)
        if isinstance(saved, DatasetDict):
            if split not in saved:
                raise ValueError(f"{name}: no split {split!r}; the splits are {sorted(saved)}")
            saved = saved[split]
        return saved.to_iterable_dataset()
    suffix = os.path.splitext(name[:-3] if name.endswith(".gz") else name)[1].lower()
    if suffix in FILE_BUILDERS:
        files = local_files(name)
        if not files:
            raise FileNotFoundError(f"{name}: no such file")
        extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
        return load_dataset(FILE_BUILDERS[suffix], data_files={split: files}, split=split, streaming=True, **extra)
    if not os.path.exists(name) and (name.startswith((".", "/")) or name.count("/") > 1):
        raise FileNotFoundError(
            f"{name}: no such file or folder (expected a Hub id, a folder, or {'/'.join(sorted(FILE_BUILDERS))} files)"
        )
    return load_dataset(name, config, split=split, streaming=True)


def local_files(name: str) -> list[str] | None:
    """The files a local source reads (a save_to_disk folder, a folder of data files, a file or a
    glob), sorted; None for a Hub id."""
    if os.path.isdir(name):
        return sorted(os.path.join(root, f) for root, _, files in os.walk(name) for f in files)
    files = sorted(glob.glob(name))
    return files or None


@functools.cache
def _log_hub_not_cached(label: str) -> None:
    logger.warning("%s: a Hub id, so its record index is not cached and every start reads it once "
                   "(save_to_disk or download it to a local folder to cache the index)", label)


def _column_types(dataset) -> dict[str, str]:
    """{column: dtype} from the features, or from the first row when the source has no schema."""
    if dataset.features is not None:
        return {column: getattr(feature, "dtype", type(feature).__name__) for column, feature in dataset.features.items()}
    first = next(iter(dataset.take(1)), {})
    return {column: "string" if isinstance(value, str) else type(value).__name__ for column, value in first.items()}


def check_column(dataset, column: str, label: str) -> None:
    """A ValueError unless `column` exists and holds strings; it names the column, the dataset and the allowed columns."""
    types = _column_types(dataset)
    strings = sorted(c for c, t in types.items() if t in STRING_DTYPES)
    if column not in types:
        raise ValueError(f"{label}: no column {column!r}; the columns are {sorted(types)} (string columns: {strings})")
    if types[column] not in STRING_DTYPES:
        raise ValueError(
            f"{label}: column {column!r} holds {types[column]}, expected strings (DNA sequences); string columns: {strings}"
        )


class DatasetSource:
    """One `datasets` split read as pretraining records (see the module docstring)."""

    def __init__(self, name: str, column: str, config: str | None = None, split: str = "train", rank: int = 0, world: int = 1,
                 index_cache_dir: str | None = None):
        from datasets.distributed import split_dataset_by_node

        self.column = column
        self.index_cache_dir = index_cache_dir
        self.files = local_files(name)  # what a cached index is keyed by; None: a Hub id, not cached
        self.identity = [name, config, split, column, rank, world]  # with the files' versions: the index key
        self.label = f"dataset {name}" + (f" (config {config})" if config else "") + f" split {split}"
        dataset = open_streaming(name, config, split)
        check_column(dataset, column, self.label)
        dataset = dataset.select_columns([column])
        if world > 1:
            dataset = split_dataset_by_node(dataset, rank=rank, world_size=world)
            self.label += f" (process {rank} of {world})"
        self.dataset = dataset
        self.sharded_by_rank = world > 1

    def sequences(self) -> Iterator[tuple[int, str]]:
        """(row number, canonical sequence) in row order; a bad row is a GenomeFormatError naming it."""
        index = 0
        for batch in self.dataset.iter(batch_size=_READ_BATCH):
            for value in batch[self.column]:
                if not isinstance(value, str):
                    raise GenomeFormatError(f"{self.label}: row {index}, column {self.column!r}: {value!r} is not a string")
                yield index, check_sequence(value, f"{self.label}, column {self.column!r}", index)
                index += 1

    def scan(self, eval_fraction: float, min_bp: int) -> list[RecordSpan]:
        """The record index: one pass over the rows (held-out records get train_end 0), or, for local
        files with an index cache, the index an earlier start wrote for the same files, split and flags."""

        def build() -> list:
            return [(len(sequence), eval_fraction >= 1.0 or (eval_fraction > 0 and held_out_share(sequence) < eval_fraction))
                    for _, sequence in self.sequences()]

        cache = self.index_cache_dir if self.files is not None else None
        if self.index_cache_dir and cache is None:
            _log_hub_not_cached(self.label)
        key = {"dataset": self.identity, "files": [file_key(f) for f in self.files or ()], "eval_fraction": eval_fraction}
        rows = cached_index(key, cache, build)
        spans = [RecordSpan(self.label, index, f"row {index}", length, 0 if held_out else length)
                 for index, (length, held_out) in enumerate(rows)]
        if not spans:
            raise ValueError(f"{self.label}: no rows")
        return check_usable(spans, min_bp, eval_fraction, self.label)

    def regions(self, key: str, regions: Regions) -> Iterator[tuple[int, Iterator[str]]]:
        if key != self.label:
            raise KeyError(f"{key!r} is not a key of {self.label}")
        if not regions:
            return
        last = max(regions)
        for index, sequence in self.sequences():
            if index in regions:
                start, end = regions[index]
                yield index, iter([sequence[start:end]])
            if index >= last:
                return

