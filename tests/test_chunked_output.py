"""Specification of chunked_output: atomic writes, resumable chunk stores, table writers."""

import csv
import os

import numpy as np
import pytest

from dnabert2.chunked_output import ChunkStore, atomic_write, chunked, write_table


def test_chunked_cuts_a_stream_into_fixed_size_lists():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="chunk size must be >= 1, got 0"):
        list(chunked(range(3), 0))


def test_atomic_write_leaves_no_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), crash)
    assert target.read_text() == "old\n"  # the previous file is untouched
    assert os.listdir(tmp_path) == ["out.csv"]  # and no temporary file is left behind


def test_chunk_store_resumes_only_with_the_same_fingerprint(tmp_path):
    out = str(tmp_path / "scores.csv")
    store = ChunkStore(out, {"model": "m1", "window": 100})
    store.save(0, {"id": np.array(["a", "b"]), "score": np.array([1.5, -2.0])})
    again = ChunkStore(out, {"model": "m1", "window": 100})
    assert again.done(0) and not again.done(1)
    again.save(1, {"id": np.array(["c"]), "score": np.array([0.25])})
    loaded = again.load()
    assert loaded["id"].tolist() == ["a", "b", "c"] and loaded["score"].tolist() == [1.5, -2.0, 0.25]
    with pytest.raises(RuntimeError, match=r"different model, window; remove it to start over"):
        ChunkStore(out, {"model": "m2", "window": 50})


def test_write_table_csv_tsv_and_parquet_hold_the_same_rows(tmp_path):
    columns = {"id": np.array(["x", "y"]), "n": np.array([3, 4]), "score": np.array([0.1234567, -1e-9])}
    write_table(str(tmp_path / "t.csv"), columns)
    with open(tmp_path / "t.csv", newline="") as f:
        assert list(csv.reader(f)) == [["id", "n", "score"], ["x", "3", "0.123457"], ["y", "4", "-1e-09"]]
    write_table(str(tmp_path / "t.tsv"), columns)
    assert (tmp_path / "t.tsv").read_text().splitlines()[1] == "x\t3\t0.123457"
    import pyarrow.parquet as pq

    write_table(str(tmp_path / "t.parquet"), columns)
    assert pq.read_table(tmp_path / "t.parquet").to_pydict() == {"id": ["x", "y"], "n": [3, 4], "score": [0.1234567, -1e-9]}
    with pytest.raises(ValueError, match=r"t.json: output must end in one of"):
        write_table(str(tmp_path / "t.json"), columns)
