"""Throughput of the whole pretraining input pipeline (read, crop, RC, tokenize, mask, collate), on CPU.

    python bench/data_pipeline.py --genomes /work/shared/data/genomes --workers 0 1 2 --batches 150

For each input format (FASTA.gz: the *.fa.gz genomes; bgzip: the *.fa.bgz genomes; Parquet: every
genome's records as rows of one Parquet file written to a temporary folder) and each number of
DataLoader workers, it iterates pretraining_data.GenomeCropStream through a torch DataLoader with
MLMCollator, exactly as pretrain.py feeds the Trainer, and counts real (non-padding) tokens per
second after --warmup batches, by the wall clock and (0 workers) per CPU second of this process, the
fair figure on a shared machine. It prints a Markdown table with, for each row, the CPU cores one
H100 would need to feed `--target` tokens/s (default 500k: the 117M model at about 40% MFU):
target / (tokens/s per busy core), where the busy cores are the workers (the main process when 0).
--profile writes a cProfile (timed by this process's CPU time) of the 0-worker run of the first format
to stdout (top 25 by tottime).
"""

import argparse
import cProfile
import math
import os
import pstats
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq
from torch.utils.data import DataLoader

from bench_paths import ROOT  # bench/bench_paths.py

from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
from dnabert2.pretraining_data import FastaSource, GenomeCropStream, MLMCollator, RecordSource


def source_for(kind: str, genome_dir: str, workdir: str) -> tuple[RecordSource, str]:
    """(source, description) of one input format."""
    names = sorted(os.listdir(genome_dir))
    if kind == "fasta.gz":
        paths = [os.path.join(genome_dir, f) for f in names if f.endswith(".fa.gz")]
        return FastaSource(paths), f"{len(paths)} .fa.gz files"
    if kind == "bgzip":
        paths = [os.path.join(genome_dir, f) for f in names if f.endswith(".fa.bgz")]
        return FastaSource(paths), f"{len(paths)} .fa.bgz file(s)"
    if kind == "parquet":
        from dnabert2.dataset_records import DatasetSource

        paths = [os.path.join(genome_dir, f) for f in names if f.endswith((".fa.gz", ".fa.bgz"))]
        table = pa.table({"sequence": [seq for _, seq in iter_records(paths)]})
        out = os.path.join(workdir, "genomes.parquet")
        pq.write_table(table, out)
        return DatasetSource(out, "sequence"), f"{table.num_rows} rows of all {len(paths)} genomes"
    raise ValueError(f"format {kind!r}: expected one of fasta.gz, bgzip, parquet")


def measure(source: RecordSource, tokenizer, workers: int, args) -> tuple[float, float | None, int]:
    """(real tokens per wall second, per CPU second of this process, batches timed) over args.batches
    batches after args.warmup. The CPU rate is None with workers: their CPU time is not this process's."""
    spans = source.scan(0.02, args.min_bp)
    stream = GenomeCropStream(spans, tokenizer, args.min_bp, args.max_bp, seed=1, group_size=args.batch_size, source=source)
    loader = DataLoader(stream, batch_size=args.batch_size, collate_fn=MLMCollator(tokenizer), num_workers=workers)
    tokens, start, cpu_start, timed = 0, None, None, 0
    for i, batch in enumerate(loader):
        if i == args.warmup:
            start, cpu_start = time.perf_counter(), time.process_time()
        elif i > args.warmup:
            tokens += int(batch["attention_mask"].sum())  # (batch, L) -> real tokens
            timed += 1
        if timed == args.batches:
            break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return tokens / wall, (tokens / cpu if workers == 0 else None), timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genomes", default="/work/shared/data/genomes")
    parser.add_argument("--formats", nargs="+", default=["fasta.gz", "bgzip", "parquet"])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--min_bp", type=int, default=200)
    parser.add_argument("--max_bp", type=int, default=1000)
    parser.add_argument("--target", type=float, default=500_000, help="tokens/s one GPU consumes")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    tokenizer = load_tokenizer(str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for kind in args.formats:
            source, what = source_for(kind, args.genomes, workdir)
            if args.profile and kind == args.formats[0]:
                profiler = cProfile.Profile(time.process_time)  # CPU time: fair on a shared machine
                profiler.enable()
                measure(source, tokenizer, 0, args)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            for workers in args.workers:
                rate, cpu_rate, timed = measure(source, tokenizer, workers, args)
                per_core = rate / max(workers, 1)
                rows.append((kind, what, workers, rate, cpu_rate, per_core, math.ceil(args.target / per_core), timed))
                print(f"{kind} workers={workers}: {rate:,.0f} tokens/s", flush=True)
    print(f"\n| input | workers | tokens/s (wall) | tokens per CPU second (0 workers) | tokens/s per busy core "
          f"| cores for {args.target / 1e3:.0f}k tokens/s | batches timed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, what, workers, rate, cpu_rate, per_core, cores, timed in rows:
        cpu = "-" if cpu_rate is None else f"{cpu_rate:,.0f}"
        print(f"| {kind} ({what}) | {workers} | {rate:,.0f} | {cpu} | {per_core:,.0f} | {cores} | {timed} |")


if __name__ == "__main__":
    main()
