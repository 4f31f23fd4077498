"""Measurements of variant_effects (numbers in BENCHMARKS.md, "Variant effects").

    python bench/variant_effects.py auroc --genomes GENOMES/*.fa.gz GENOMES/*.bgz
    python bench/variant_effects.py tata --model FINE_TUNED_DIR --test_csv GUE/prom/prom_300_tata/test.csv
    python bench/variant_effects.py speed --threads 2

auroc: positions drawn at random from the held-out tail of every record (its last --eval_fraction, as
  pretrain.py holds out; the window lies inside the tail where the tail is long enough). "ref" is the
  real base, "alt" a random other base. AUROC = P(pll_ratio < 0) + P(pll_ratio = 0) / 2, the
  probability that the score ranks the real base above the substitute (the AUROC of the pairwise
  decision "which of the two sequences is real"), for the given checkpoint and for a randomly
  initialised model of the same config. 95% interval: bootstrap over positions.
tata: saturation mutagenesis (classifier, delta logit of class 1) of test positives that contain a
  TATA box (TATA[AT]A[AT]); mean |delta logit| over the 3 substitutions per position, inside the
  motif vs outside it.
speed: variants per second of score_windows (default scores) on SNVs of the bundled mitochondrion.
"""

import argparse
import re
import sys
import time

import numpy as np
import torch

from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import BASES, load_tokenizer
from dnabert2.modeling_bert import BertForMaskedLM
from dnabert2.pretraining_data import scan_records
from dnabert2.variant_effects import (
    ReferenceGenome, Variant, VariantWindow, load_scoring_model, plot_mutagenesis, saturation_mutagenesis, score_windows,
)

TATA = re.compile(r"TATA[AT]A[AT]")


def auroc(args) -> None:
    rng = np.random.default_rng(args.seed)
    windows, names = [], []
    for span in scan_records(args.genomes, args.eval_fraction, 200):
        genome = ReferenceGenome(span.path, args.cache_dir)
        chrom = span.name.split()[0]
        tail = span.length - span.train_end
        half = args.window_bp // 2
        lo, hi = (span.train_end + half, span.length - half) if tail > args.window_bp else (span.train_end, span.length)
        picked = 0
        for pos0 in rng.permutation(np.arange(lo, hi)):
            ref = genome.fetch(chrom, int(pos0), int(pos0) + 1)
            if ref not in BASES:
                continue
            alt = rng.choice([b for b in BASES if b != ref])
            windows.append(genome.window(Variant(chrom, int(pos0) + 1, ref, str(alt)), args.window_bp))
            names.append(chrom)
            picked += 1
            if picked == args.per_record:
                break
    tokenizer = load_tokenizer(args.model)
    trained, _ = load_scoring_model(args.model)
    torch.manual_seed(args.seed)
    random_model = BertForMaskedLM(BertConfig.from_pretrained(args.model)).eval()
    print(f"{len(windows)} positions from {len(set(names))} records; window {args.window_bp} bp, flank {args.flank_bp} bp")
    print("| model | positions | AUROC (real base preferred) | 95% bootstrap | mean pll_ratio | mean tokens scored (ref) |")
    print("|---|---:|---:|---|---:|---:|")
    for label, model in (("bundled checkpoint", trained), ("random init, same config", random_model)):
        start = time.process_time()
        out = score_windows(model, tokenizer, windows, scores=["pll_ratio"], flank_bp=args.flank_bp)
        x = out["pll_ratio"]
        wins = (x < 0) + 0.5 * (x == 0)
        boot = [rng.choice(wins, len(wins)).mean() for _ in range(2000)]
        print(f"| {label} | {len(x)} | {wins.mean():.3f} | {np.percentile(boot, 2.5):.3f}-{np.percentile(boot, 97.5):.3f} | "
              f"{x.mean():.3f} | {out['pll_tokens_ref'].mean():.1f} |", flush=True)
        print(f"  ({time.process_time() - start:.0f} s CPU)", file=sys.stderr)
        per = {n: wins[[i for i, m in enumerate(names) if m == n]].mean() for n in dict.fromkeys(names)}
        print("  per record: " + ", ".join(f"{n} {v:.2f}" for n, v in per.items()), file=sys.stderr)


def tata(args) -> None:
    import csv

    with open(args.test_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "1" and TATA.search(r["sequence"].upper())]
    rows = rows[: args.max_sequences]
    model, tokenizer = load_scoring_model(args.model)
    inside_all, outside_all, ratios = [], [], []
    start = time.time()
    for k, row in enumerate(rows):
        seq = row["sequence"].upper()
        matrix = saturation_mutagenesis(model, tokenizer, seq, mode="classifier", target_class=1)
        effect = np.nanmean(np.abs(matrix), axis=1) * 4 / 3  # mean over the 3 substitutions (ref cell is 0)
        motif = np.zeros(len(seq), dtype=bool)
        for m in TATA.finditer(seq):
            motif[m.start() : m.end()] = True
        inside_all.append(effect[motif].mean())
        outside_all.append(effect[~motif].mean())
        ratios.append(inside_all[-1] / outside_all[-1])
        print(f"  sequence {k + 1}: inside {inside_all[-1]:.4f} outside {outside_all[-1]:.4f} ratio {ratios[-1]:.2f}", flush=True)
        if k == 0 and args.figure:
            first = TATA.search(seq)
            plot_mutagenesis(matrix, seq, args.figure, label="delta logit, promoter class (alt - ref)",
                             title=f"prom_300_tata test positive #1: TATA box {first.group()} at {first.start() + 1}-{first.end()}")
    inside, outside = np.mean(inside_all), np.mean(outside_all)
    print(f"{len(rows)} test positives with a TATA box; {time.time() - start:.0f} s wall for {len(rows)} x 900 variants")
    print(f"mean |delta logit| inside the motif {inside:.4f}, outside {outside:.4f}, ratio {inside / outside:.2f}; "
          f"median per-sequence ratio {np.median(ratios):.2f}; inside > outside in {np.mean(np.array(ratios) > 1):.0%} of sequences")


def speed(args) -> None:
    torch.set_num_threads(args.threads)
    genome = ReferenceGenome(args.fasta, args.cache_dir)
    chrom = next(iter(genome.lengths))
    rng = np.random.default_rng(0)
    tokenizer = load_tokenizer(args.model)
    print(f"| model | dtype | scores | variants | wall s | CPU s | variants/s (wall) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.models:
        for dtype in ("float32", "bfloat16"):
            if name == "bundled":
                model, _ = load_scoring_model(args.model, dtype)
            else:
                torch.manual_seed(0)
                config = BertConfig.from_pretrained(args.model, **PRESETS[name])
                model = BertForMaskedLM(config).to(getattr(torch, dtype)).eval()
            n = args.variants if name == "bundled" else args.variants_large
            positions = rng.integers(args.window_bp, genome.lengths[chrom] - args.window_bp, n)
            windows = []
            for p in positions:
                ref = genome.fetch(chrom, int(p), int(p) + 1)
                windows.append(genome.window(Variant(chrom, int(p) + 1, ref, "A" if ref != "A" else "G"), args.window_bp))
            w = windows[0]
            score_windows(model, tokenizer, [VariantWindow(w.ref_seq[w.start - 32 : w.start + 32], w.alt_seq[w.start - 32 : w.start + 32], 32, 1, 1)])  # warm-up, 64 bp
            t, c = time.time(), time.process_time()
            score_windows(model, tokenizer, windows)
            wall, cpu = time.time() - t, time.process_time() - c
            print(f"| {name} | {dtype} | pll_ratio + embedding | {n} | {wall:.1f} | {cpu:.1f} | {n / wall:.2f} |", flush=True)
    model, _ = load_scoring_model(args.model)
    seq = genome.fetch(chrom, 3000, 3300)
    t, c = time.time(), time.process_time()
    saturation_mutagenesis(model, tokenizer, seq, mode="pll_ratio")
    print(f"mutagenesis pll_ratio, 300 bp (900 variants), bundled fp32: {time.time() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU")
    if args.classifier:
        model, _ = load_scoring_model(args.classifier)
        t, c = time.time(), time.process_time()
        saturation_mutagenesis(model, tokenizer, seq, mode="classifier")
        print(f"mutagenesis classifier, 300 bp (900 variants), fp32: {time.time() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("auroc")
    a.add_argument("--genomes", nargs="+", required=True)
    a.add_argument("--model", default=".")
    a.add_argument("--eval_fraction", type=float, default=0.02)
    a.add_argument("--per_record", type=int, default=50)
    a.add_argument("--window_bp", type=int, default=256)
    a.add_argument("--flank_bp", type=int, default=32)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--cache_dir", default=None)
    t = sub.add_parser("tata")
    t.add_argument("--model", required=True)
    t.add_argument("--test_csv", required=True)
    t.add_argument("--max_sequences", type=int, default=50)
    t.add_argument("--figure", default="")
    s = sub.add_parser("speed")
    s.add_argument("--model", default=".")
    s.add_argument("--fasta", default="data/genomes/human_mito.fa.gz")
    s.add_argument("--models", nargs="+", default=["bundled", "dnabert2-117m"])
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--variants", type=int, default=32)
    s.add_argument("--variants_large", type=int, default=4)
    s.add_argument("--window_bp", type=int, default=1024)
    s.add_argument("--classifier", default="")
    s.add_argument("--cache_dir", default=None)
    args = p.parse_args()
    {"auroc": auroc, "tata": tata, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
