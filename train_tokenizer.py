"""Train the DNABERT-2 BPE tokenizer (or a k-mer baseline) on genomes.

    python train_tokenizer.py GENOME.fa[.gz] [MORE ...] --output DIR [--vocab-size 4096] [--overwrite]

Inputs are FASTA, FASTA.gz, bgzip or one-sequence-per-line text, read as a stream. Each record is
cut into words of --word-length bp (FASTA line breaks never cut a word); runs of N (and IUPAC
ambiguity codes, which read as N) are cut out of the words, and soft-masked (lowercase) sequence
is read as uppercase. Every --holdout-every-th word is kept out of training and used to report
bp per token. --sample-fraction / --max-bp subsample a large corpus deterministically.
--output is required; tokenizer files already in it are replaced only with --overwrite, and the
files are written into a temporary folder first, then renamed into place.
"""

import random
import time
from dataclasses import dataclass, field

from dnabert2.cli import OutputArguments, ScriptParser, at_least, positional, refuse_nonempty_folder, run, within, write_files_into
from dnabert2.dna_tokenizer import MODEL_MAX_LENGTH, CorpusTooSmallError, bp_per_token, kmer_tokenizer, save_for_transformers, train_bpe
from dnabert2.genome_io import GenomeFormatError, iter_windows, split_n_runs

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")  # what save_for_transformers writes


@dataclass
class Args:
    output: str = field(metadata={"help": "folder for tokenizer.json and its configs (required: never the current folder by accident)"})
    inputs: list[str] = field(default_factory=list, metadata=positional("*", "FASTA / FASTA.gz / bgzip / one-sequence-per-line files"))
    vocab_size: int = field(default=4096, metadata={"help": "at least the special tokens plus the alphabet (checked by train_bpe)"})
    min_frequency: int = field(default=2, metadata=at_least(1))
    word_length: int = field(default=4000, metadata=at_least(1, "bp per training word"))
    sample_fraction: float = field(default=1.0, metadata=within(0, 1, "keep this fraction of words", low_open=True))
    max_bp: int = field(default=0, metadata=at_least(0, "stop reading after this many bp (0: all)"))
    holdout_every: int = field(default=50, metadata=at_least(2, "hold out every Nth word for the bp/token report"))
    seed: int = field(default=42, metadata=at_least(0, "seed of the subsampling"))
    model_max_length: int | None = field(default=MODEL_MAX_LENGTH, metadata={
        "help": "default truncation length written to tokenizer_config.json (default: none; the model has no limit)"})
    kmer: int = field(default=0, metadata=at_least(0, "> 0: write a k-mer WordLevel tokenizer with this k instead of training BPE"))
    overlap: bool = field(default=False, metadata={"help": "with --kmer: overlapping (DNABERT-1) k-mers"})


def parse_args(argv=None) -> tuple[Args, OutputArguments]:
    parser = ScriptParser((Args, OutputArguments), description=__doc__)
    args, out = parser.parse(argv)
    if args.overlap and not args.kmer:
        parser.error("--overlap needs --kmer K")
    if not args.kmer and not args.inputs:
        parser.error("give at least one input file")
    return args, out


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
    args, out = parse_args(argv)
    refuse_nonempty_folder(args.output, out.overwrite, "tokenizer folder", names=TOKENIZER_FILES)
    start = time.time()
    if args.kmer:
        tokenizer = kmer_tokenizer(args.kmer, args.overlap)
        write_files_into(args.output, lambda tmp: save_for_transformers(tokenizer, tmp, args.model_max_length))
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
    write_files_into(args.output, lambda tmp: save_for_transformers(tokenizer, tmp, args.model_max_length))
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
    run(main)
