"""Startup cost of pretraining on a large FASTA input: the record scan, with and without the index cache.

    python bench/startup_scan.py --genomes /work/shared/data/genomes --gbp 1 --formats fa fa.gz \
        --workdir /work/scratch/startup_data --keep

Builds the input once: `--copies` (or enough copies for `--gbp` Gbp) of every genome in --genomes
concatenated, records renamed copyN_NAME so that every record is distinct, 80-bp lines, written as
plain FASTA (fa) and/or gzip FASTA (fa.gz, level 1) in --workdir. With --keep the input stays, and a
later run with the same --genomes and copies reuses it (a small .json beside it records what it
holds), so before/after comparisons read the same bytes. Then it times pretraining's record scan
(pretraining_data.FastaSource.scan) per format and --modes: `none` (no cache: what every start
did before the index cache), `cold` (first start: reads the file and writes the index) and `warm`
(every later start: reads the index). It prints a Markdown table of wall seconds and CPU seconds of
this process (the fair figure on a shared machine). The index cache is deleted after each format;
without --keep the input is deleted too.
"""

import argparse
import gzip
import json
import math
import os
import shutil
import time
from dataclasses import dataclass

from dnabert2.genome_io import iter_records
from dnabert2.pretraining_data import FastaSource

MODES = ("none", "cold", "warm")
FORMATS = ("fa", "fa.gz")
LINE_BP = 80


@dataclass
class Timing:
    what: str
    seconds: float
    cpu_seconds: float
    records: int
    bp: int


def genome_records(genome_dir: str) -> list[tuple[str, str]]:
    """(first word of the header, sequence) of every record of every genome file, in file-name order."""
    files = sorted(os.path.join(genome_dir, f) for f in os.listdir(genome_dir) if f.endswith((".fa.gz", ".fa.bgz", ".fa")))
    return [(record.name.split()[0], seq) for record, seq in iter_records(files)]


def build_input(records: list[tuple[str, str]], copies: int, path: str) -> dict:
    """Write `copies` copies of `records` (renamed copyN_NAME) to `path` (gzip level 1 when it ends in
    .gz) unless the .json beside it says it already holds them; what the file holds."""
    meta_path = path + ".json"
    what = {"copies": copies, "records": copies * len(records), "bp": copies * sum(len(s) for _, s in records),
            "names": [name for name, _ in records]}
    if os.path.isfile(path) and os.path.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f) == what:
                return what
    lines = {name: "\n".join(seq[i : i + LINE_BP] for i in range(0, len(seq), LINE_BP)) for name, seq in records}
    opener = (lambda p: gzip.open(p, "wt", compresslevel=1)) if path.endswith(".gz") else (lambda p: open(p, "w"))
    with opener(path) as f:
        for copy in range(copies):
            for name, _ in records:
                f.write(f">copy{copy}_{name}\n{lines[name]}\n")
    with open(meta_path, "w") as f:
        json.dump(what, f)
    return what


def timed(what: str, path: str, cache: str | None) -> Timing:
    start, cpu_start = time.perf_counter(), time.process_time()
    spans = FastaSource([path], cache).scan(0.02, 200)
    return Timing(what, time.perf_counter() - start, time.process_time() - cpu_start, len(spans), sum(s.length for s in spans))


MODE_ROWS = {
    "none": "no cache (every start before the index cache; `--index_cache_dir none`)",
    "cold": "cold cache (first start: reads the file, writes the index)",
    "warm": "warm cache (every later start, file unchanged)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genomes", default="/work/shared/data/genomes")
    parser.add_argument("--copies", type=int, default=None, help="copies of the genomes (default: enough for --gbp)")
    parser.add_argument("--gbp", type=float, default=1.0, help="input size in Gbp when --copies is not given")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=["fa.gz"])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workdir", default="/tmp/startup_scan")
    parser.add_argument("--keep", action="store_true", help="keep the input for later runs")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    start = time.perf_counter()
    records = genome_records(args.genomes)
    copies = args.copies or math.ceil(args.gbp * 1e9 / sum(len(s) for _, s in records))
    rows = []
    try:
        for fmt in args.formats:
            path = os.path.join(args.workdir, f"concat_{copies}x.{fmt}")
            what = build_input(records, copies, path)
            print(f"input {path}: {what['records']} records, {what['bp'] / 1e6:.1f} Mbp, {os.path.getsize(path) / 1e6:.0f} MB "
                  f"(ready after {time.perf_counter() - start:.0f} s)", flush=True)
            cache = os.path.join(args.workdir, "index_cache")
            shutil.rmtree(cache, ignore_errors=True)
            for mode in args.modes:
                row = timed(f"{fmt}: {MODE_ROWS[mode]}", path, None if mode == "none" else cache)
                print(f"{row.what}: {row.seconds:.2f} s wall, {row.cpu_seconds:.2f} s CPU", flush=True)
                rows.append(row)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
            print(f"deleted {args.workdir}")
    print("\n| scan | seconds (wall) | seconds (CPU) | records | Mbp |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row.what} | {row.seconds:.2f} | {row.cpu_seconds:.2f} | {row.records} | {row.bp / 1e6:.1f} |")


if __name__ == "__main__":
    main()
