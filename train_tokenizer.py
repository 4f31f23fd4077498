"""Train the DNABERT-2 BPE tokenizer (or a k-mer baseline) on genomes.

    python train_tokenizer.py GENOME.fa[.gz] [MORE ...] --output DIR [--vocab-size 4096]

Inputs are FASTA, FASTA.gz, bgzip or one-sequence-per-line text, read as a stream. Each record is
cut into words of --word-length bp (FASTA line breaks never cut a word); runs of N (and IUPAC
ambiguity codes, which read as N) are cut out of the words, and soft-masked (lowercase) sequence
is read as uppercase. Every --holdout-every-th word is kept out of training and used to report
bp per token. --sample-fraction / --max-bp subsample a large corpus deterministically.
"""

import argparse
import random
import sys
import time
from dataclasses import dataclass, field

from dnabert2.dna_tokenizer import MODEL_MAX_LENGTH, CorpusTooSmallError, bp_per_token, kmer_tokenizer, save_for_transformers, train_bpe
from dnabert2.genome_io import GenomeFormatError, iter_windows, split_n_runs


@dataclass
class Args:
    inputs: list[str] = field(default_factory=list)
    output: str = "."
    vocab_size: int = 4096
    min_frequency: int = 2
    word_length: int = 4000
    sample_fraction: float = 1.0
    max_bp: int = 0  # 0: no limit
    holdout_every: int = 50  # every Nth word is held out for the bp/token report
    seed: int = 42
    model_max_length: int | None = MODEL_MAX_LENGTH
    kmer: int = 0  # > 0: write a k-mer WordLevel tokenizer instead of training BPE
    overlap: bool = False


def parse_args(argv=None) -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="FASTA / FASTA.gz / bgzip / one-sequence-per-line files")
    p.add_argument("--output", default=Args.output, help="directory for tokenizer.json and its configs")
    p.add_argument("--vocab-size", type=int, default=Args.vocab_size)
    p.add_argument("--min-frequency", type=int, default=Args.min_frequency)
    p.add_argument("--word-length", type=int, default=Args.word_length, help="bp per training word")
    p.add_argument("--sample-fraction", type=float, default=Args.sample_fraction, help="keep this fraction of words")
    p.add_argument("--max-bp", type=int, default=Args.max_bp, help="stop reading after this many bp (0: all)")
    p.add_argument("--holdout-every", type=int, default=Args.holdout_every, help="hold out every Nth word")
    p.add_argument("--seed", type=int, default=Args.seed, help="seed of the subsampling")
    p.add_argument("--model-max-length", type=int, default=Args.model_max_length,
                   help="default truncation length written to tokenizer_config.json (default: none; the model has no limit)")
    p.add_argument("--kmer", type=int, default=0, help="write a k-mer tokenizer with this k instead of BPE")
    p.add_argument("--overlap", action="store_true", help="with --kmer: overlapping (DNABERT-1) k-mers")
    ns = p.parse_args(argv)
    args = Args(**{k.replace("-", "_"): v for k, v in vars(ns).items()})
    if args.overlap and not args.kmer:
        p.error("--overlap needs --kmer K")
    if not args.kmer and not args.inputs:
        p.error("give at least one input file")
    if not 0.0 < args.sample_fraction <= 1.0:
        p.error(f"--sample-fraction must be in (0, 1], got {args.sample_fraction}")
    if args.holdout_every < 2:
        p.error(f"--holdout-every must be >= 2, got {args.holdout_every}")
    return args


class CorpusReader:
    """Streams training words and collects the held-out words; counts what it read."""

    def __init__(self, args: Args):
        self.args = args
        self.heldout: list[str] = []
        self.bp_read = 0
        self.bp_trained = 0

    def words(self):
        rng = random.Random(self.args.seed)
        for index, (_, _, window) in enumerate(iter_windows(self.args.inputs, self.args.word_length)):
            if self.args.max_bp and self.bp_read >= self.args.max_bp:
                return
            self.bp_read += len(window)
            if rng.random() >= self.args.sample_fraction:
                continue
            pieces = split_n_runs(window)
            if index % self.args.holdout_every == self.args.holdout_every - 1:
                self.heldout.extend(pieces)
                continue
            for piece in pieces:
                self.bp_trained += len(piece)
                yield piece


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    if args.kmer:
        tokenizer = kmer_tokenizer(args.kmer, args.overlap)
        save_for_transformers(tokenizer, args.output, args.model_max_length)
        print(f"wrote {'overlapping ' if args.overlap else ''}{args.kmer}-mer tokenizer "
              f"({tokenizer.get_vocab_size()} tokens) to {args.output}")
        return 0
    reader = CorpusReader(args)
    try:
        tokenizer = train_bpe(reader.words(), args.vocab_size, args.min_frequency)
    except CorpusTooSmallError:
        if reader.bp_trained == 0:
            raise GenomeFormatError(f"no A/C/G/T sequence to train on in {', '.join(args.inputs)}") from None
        raise
    save_for_transformers(tokenizer, args.output, args.model_max_length)
    heldout = bp_per_token(tokenizer, reader.heldout) if reader.heldout else float("nan")
    print(
        f"corpus: {reader.bp_read:,} bp read, {reader.bp_trained:,} bp trained on, "
        f"{sum(map(len, reader.heldout)):,} bp held out\n"
        f"vocabulary: {tokenizer.get_vocab_size()} tokens\n"
        f"held-out bp per token: {heldout:.3f}\n"
        f"time: {time.time() - start:.1f} s\n"
        f"wrote {args.output}/tokenizer.json, tokenizer_config.json, special_tokens_map.json"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (GenomeFormatError, FileNotFoundError, ValueError) as e:
        sys.exit(f"train_tokenizer.py: error: {e}")
