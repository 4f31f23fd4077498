"""The CPU inference benchmark script runs and prints its table (its numbers are in BENCHMARKS.md)."""

import subprocess
import sys

from helpers import REPO_ROOT

SCRIPT = str(REPO_ROOT / "bench" / "cpu_inference.py")
TINY = ["--preset", "dnabert2-tiny", "--workloads", "a", "--repeats", "2", "--warmup", "1", "--peak-size", "256"]


def table_rows(args: list[str]) -> list[list[str]]:
    out = subprocess.run([sys.executable, SCRIPT, *TINY, *args], capture_output=True, text=True, check=True, timeout=300).stdout
    return [line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("| (a)")]


def test_smoke_rows_in_one_process_take_turns_and_share_peak_memory():
    rows = table_rows(["--same-process", "--rounds", "2"])
    assert [(r[1], r[2]) for r in rows] == [("baseline", "float32"), ("sdpa", "float32"), ("sdpa", "bfloat16")]
    assert rows[0][6] == "1.00x" and all(float(r[4].replace(",", "")) > 0 for r in rows)
    assert all(r[-1] == "shared" for r in rows)


def test_smoke_each_row_in_its_own_process_reports_its_own_peak_memory():
    rows = table_rows(["--rows", "sdpa:float32"])
    assert len(rows) == 1 and rows[0][6] == "n/a"  # no baseline row to compare with
    assert float(rows[0][-1]) > 0
