"""Resumable, atomic output for the command-line tools that stream records into one result file.

Lives here: writing a file atomically (temporary name, then rename), cutting a record stream into
chunks, a work folder `OUTPUT.partial/` that keeps every finished chunk so that an interrupted run
resumes without recomputing (guarded by a fingerprint of the input and every option that changes
the result), and the final table writers (.csv, .tsv, .parquet, .npy).
Not here: reading inputs (genome_io, the scripts) or computing anything (embedding, scoring).
Used by embed.py and every other script that writes one row per input record; `atomic_write` also
by variant_effects (its gunzipped FASTA cache).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

T = TypeVar("T")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary name beside `path`, then rename: `path` is never half-written."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def file_fingerprint(path: str) -> dict:
    """Size and modification time of a file (or of every file in a folder): changes when it changes."""
    if os.path.isdir(path):
        return {name: file_fingerprint(os.path.join(path, name)) for name in sorted(os.listdir(path))
                if os.path.isfile(os.path.join(path, name))}
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime": stat.st_mtime}


class ChunkStore:
    """`OUTPUT.partial/`: one .npz per finished chunk plus a manifest holding the run's fingerprint.

    A second run with the same fingerprint reuses the finished chunks; a different fingerprint is an
    error that names what changed (never a silent mix of two runs' results).
    """

    def __init__(self, output: str, fingerprint: dict) -> None:
        self.output = output
        self.folder = output + ".partial"
        manifest = os.path.join(self.folder, "manifest.json")
        fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON
        if os.path.isdir(self.folder):
            with open(manifest) as f:
                previous = json.load(f)
            if previous != fingerprint:
                changed = sorted(k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k))
                raise RuntimeError(
                    f"{self.folder} holds a partial run with different {', '.join(changed)}; remove it to start over"
                )
            return
        os.makedirs(self.folder)
        atomic_write(manifest, lambda p: _dump_json(fingerprint, p))

    def discard_if_empty(self) -> None:
        """Remove the work folder if no chunk was finished (a run that failed before any result)."""
        if os.path.isdir(self.folder) and not any(f.endswith(".npz") for f in os.listdir(self.folder)):
            shutil.rmtree(self.folder)

    def _path(self, index: int) -> str:
        return os.path.join(self.folder, f"chunk_{index:06d}.npz")

    def done(self, index: int) -> bool:
        return os.path.isfile(self._path(index))

    def save(self, index: int, columns: dict[str, np.ndarray]) -> None:
        atomic_write(self._path(index), lambda p: _save_npz(p, columns))

    def load(self) -> dict[str, np.ndarray]:
        """Every finished chunk's columns, concatenated in chunk order."""
        names = sorted(f for f in os.listdir(self.folder) if f.endswith(".npz"))
        parts = [np.load(os.path.join(self.folder, name)) for name in names]
        if not parts:
            return {}
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0].files}

    def finish(self, write: Callable[[dict[str, np.ndarray]], None]) -> None:
        """Write the final output from all chunks (the writer must be atomic), then drop the work folder."""
        write(self.load())
        shutil.rmtree(self.folder)


def write_table(path: str, columns: dict[str, np.ndarray]) -> None:
    """One row per record: .csv / .tsv (floats with 6 significant digits) or .parquet, atomically."""
    if not path.endswith(TABLE_SUFFIXES):
        raise ValueError(f"{path}: output must end in one of {TABLE_SUFFIXES}")
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: pa.array(values.tolist()) for name, values in columns.items()})
        atomic_write(path, lambda p: pq.write_table(table, p))
        return
    delimiter = "\t" if path.endswith(".tsv") else ","
    rows = zip(*(_format_column(values) for values in columns.values()))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, delimiter=delimiter)
            writer.writerow(list(columns))
            writer.writerows(rows)

    atomic_write(path, write)


def _format_column(values: np.ndarray) -> list:
    if np.issubdtype(values.dtype, np.floating):
        return [f"{v:.6g}" for v in values.tolist()]
    return values.tolist()


def _save_npz(path: str, columns: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **columns)


def _dump_json(value: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
