"""Startup cost of pretraining on a large FASTA input: the record scan with and without the index cache.

    python bench/startup_scan.py --genomes /work/shared/data/genomes --copies 100 --workdir /tmp/startup_scan

Builds one gzip FASTA of `--copies` concatenated copies of every genome in --genomes (records renamed
copyN_NAME, so every record is distinct), then times pretraining's record scan
(pretraining_data.FastaSource.scan) three ways: no cache (what every start did before the index
cache), a cold cache (first start: reads the file and writes the index) and a warm cache (every
later start). Prints a Markdown table; deletes the input and the cache afterwards (--keep keeps them).
"""

import argparse
import gzip
import os
import shutil
import time
from dataclasses import dataclass

from dnabert2.genome_io import iter_records
from dnabert2.pretraining_data import FastaSource


@dataclass
class Timing:
    what: str
    seconds: float
    records: int
    bp: int


def build_input(genome_dir: str, copies: int, path: str) -> tuple[int, int]:
    """Write the concatenated input; (records, bp)."""
    files = sorted(os.path.join(genome_dir, f) for f in os.listdir(genome_dir) if f.endswith((".fa.gz", ".fa.bgz", ".fa")))
    records = [(name.split()[0], seq) for name, seq in ((r.name, s) for r, s in iter_records(files))]
    lines = {name: "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) for name, seq in records}
    with gzip.open(path, "wt", compresslevel=1) as f:
        for copy in range(copies):
            for name, _ in records:
                f.write(f">copy{copy}_{name}\n{lines[name]}\n")
    return copies * len(records), copies * sum(len(seq) for _, seq in records)


def timed(what: str, path: str, cache: str | None) -> Timing:
    start = time.perf_counter()
    spans = FastaSource([path], cache).scan(0.02, 200)
    return Timing(what, time.perf_counter() - start, len(spans), sum(s.length for s in spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genomes", default="/work/shared/data/genomes")
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--workdir", default="/tmp/startup_scan")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    path, cache = os.path.join(args.workdir, f"concat_{args.copies}x.fa.gz"), os.path.join(args.workdir, "index_cache")
    try:
        start = time.perf_counter()
        records, bp = build_input(args.genomes, args.copies, path)
        print(f"built {path}: {records} records, {bp / 1e6:.1f} Mbp, {os.path.getsize(path) / 1e6:.0f} MB gzip "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        rows = [timed("no cache (before)", path, None), timed("cold cache (first start, writes index)", path, cache),
                timed("warm cache (every later start)", path, cache)]
        print(f"\n| scan of {bp / 1e6:.0f} Mbp ({records} records) | seconds | records | Mbp |\n|---|---:|---:|---:|")
        for row in rows:
            print(f"| {row.what} | {row.seconds:.2f} | {row.records} | {row.bp / 1e6:.1f} |")
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
            print(f"deleted {args.workdir}")


if __name__ == "__main__":
    main()
