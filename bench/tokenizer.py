"""Tokenizer benchmark: bp per token and encoding throughput, shipped vs. original tokenizer.json.

    python bench/tokenizer.py --gue-root GUE_ROOT --genome GENOME.fa.gz \
        --original ORIGINAL/tokenizer.json

Both tokenizers run through the same library call (`tokenizers.Tokenizer.encode_batch`, all
cores), on the same strings: the `test.csv` sequences of each GUE task group found under
--gue-root, and --genome-bp of the genome cut into --window bp pieces (upper-cased, since the
original has no normalizer). bp per token excludes [CLS]/[SEP]. Throughput is the best of --repeats.
"""

import argparse
import csv
import glob
import os
import time
from pathlib import Path

from tokenizers import Tokenizer

from dnabert2.genome_io import iter_windows

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {  # GUE task group -> species, as in the paper
    "prom": "human", "tf": "human", "splice": "human", "EMP": "yeast", "mouse": "mouse", "virus": "virus",
}


def gue_sets(root: str) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "test.csv"), recursive=True)):
        rel = os.path.relpath(path, root).split(os.sep)
        group = next((g for g in GROUPS if rel[0].startswith(g)), rel[0])
        with open(path, newline="") as f:
            rows = csv.DictReader(f)
            sets.setdefault(f"GUE {group} ({GROUPS.get(group, '?')})", []).extend(r["sequence"] for r in rows)
    return sets


def genome_slice(path: str, total_bp: int, window: int) -> list[str]:
    pieces, n = [], 0
    for _, _, w in iter_windows([path], window):
        pieces.append(w)
        n += len(w)
        if n >= total_bp:
            break
    return pieces


def measure(tokenizer: Tokenizer, seqs: list[str], repeats: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encodings = tokenizer.encode_batch(seqs, add_special_tokens=False)
        best = min(best, time.perf_counter() - start)
    bp = sum(map(len, seqs))
    tokens = sum(len(e.ids) for e in encodings)
    return bp / tokens, bp / best / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", default=str(ROOT / "tokenizer.json"), help="the shipped tokenizer.json")
    p.add_argument("--original", default=None, help="path to the original DNABERT-2 tokenizer.json")
    p.add_argument("--gue-root", default=str(ROOT / "data" / "gue"))
    p.add_argument("--genome", default=str(ROOT / "data" / "genomes" / "phage_lambda.fa.gz"))
    p.add_argument("--genome-bp", type=int, default=2_000_000)
    p.add_argument("--window", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    tokenizers = {"shipped": Tokenizer.from_file(args.tokenizer)}
    if args.original:
        tokenizers["original"] = Tokenizer.from_file(args.original)
    datasets = gue_sets(args.gue_root)
    datasets[f"genome {Path(args.genome).name}"] = genome_slice(args.genome, args.genome_bp, args.window)

    names = list(tokenizers)
    header = "| data | sequences | bp | " + " | ".join(f"{n} bp/token | {n} Mbp/s" for n in names)
    if args.original:
        header += " | bp/token shipped/original | speed shipped/original"
    print(header + " |")
    print("|" + "---|" * (header.count("|") - 0))
    for data, seqs in datasets.items():
        results = {n: measure(t, seqs, args.repeats) for n, t in tokenizers.items()}
        row = f"| {data} | {len(seqs):,} | {sum(map(len, seqs)):,} | "
        row += " | ".join(f"{results[n][0]:.3f} | {results[n][1]:.1f}" for n in names)
        if args.original:
            (bs, ss), (bo, so) = results["shipped"], results["original"]
            row += f" | {bs / bo:.3f} | {ss / so:.2f}"
        print(row + " |")


if __name__ == "__main__":
    main()
