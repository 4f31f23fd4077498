"""Data for MLM pretraining on genomes: streamed random crops, a held-out evaluation set, masking.

Lives here: `GenomeCropStream` (an IterableDataset of tokenized random crops), `heldout_examples`
(the fixed evaluation set), `MLMCollator` (15% masking, 80/10/10, padding), the record scan
that splits each record into a training part and a held-out tail, and `FastaSource`, the FASTA
side of the `RecordSource` interface. The crop pipeline is one: it reads records only through a
RecordSource (`scan` gives the record index, `regions` the sequence of chosen regions), so FASTA
files and `datasets` sources (dataset_records.DatasetSource) get the same crops, reverse
complements, N filter, masks and length grouping. Not here: reading FASTA (genome_io.py), opening
`datasets` sources (dataset_records.py), the model, or Trainer glue (pretrain.py).

How the stream is made (deterministic given the seed and the epoch):
- Each record's last `eval_fraction` is held out; training crops come only from the part before it.
- Per pass over the corpus, every record is tiled from a random offset with crops of random length in
  [min_bp, max_bp] bp; each crop is reverse-complemented with probability rc_prob.
- Crops with more than max_n_fraction N are skipped; N runs inside kept crops stay (N is a token).
- `sampling` weights the files (genomes): each file's share of the crops is proportional to its
  training bp to the power alpha: "length" (alpha 1, every base equally likely: the default),
  "genome" (alpha 0, every file equally likely) or a number in between (as multilingual language
  models balance languages). A file above its length share is tiled several times per pass; one
  below it keeps each tile with a probability, so its crops still cover the whole record.
- Files are interleaved round-robin and crops pass through a shuffle buffer, then are grouped
  into batches of similar token length (little padding) whose order is shuffled again.
- Each process (torchrun) and DataLoader worker takes every k-th batch group, so ranks see
  different data and no batch is sent between processes. A source that is already split by rank
  (`sharded_by_rank`: a `datasets` source under torchrun, split_dataset_by_node) gives each process
  its own records; then only the DataLoader workers take every k-th group.
- A pass that gives a reader no batch at all (too little usable sequence for one batch) is an
  EmptyPassError naming the crops kept and skipped and the batch size, never an endless loop.
"""

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .dna_alphabet import reverse_complement
from .dna_tokenizer import SPECIAL_TOKENS
from .genome_io import iter_record_chunks, record_index
from .modeling_bert import IGNORE_INDEX

SPECIAL_IDS_BELOW = len(SPECIAL_TOKENS)  # ids below are [UNK] [CLS] [SEP] [PAD] [MASK]: never masked, never sampled


class EmptyPassError(ValueError):
    """A full pass over the corpus yields no batch, so the endless stream would hang."""


@dataclass(frozen=True)
class RecordSpan:
    path: str
    index: int  # record number within its file
    name: str
    length: int
    train_end: int  # crops for training lie in [0, train_end); [train_end, length) is held out


Regions = dict[int, tuple[int, int]]  # record index -> [start, end) in bp


class RecordSource(Protocol):
    """Where the one crop pipeline reads records from (FASTA files or a `datasets` source)."""

    sharded_by_rank: bool  # True: each torchrun process already holds only its own records

    def scan(self, eval_fraction: float, min_bp: int) -> list[RecordSpan]:
        """The record index; each span's `path` is the key that `regions` takes and `sampling` weighs."""
        ...

    def regions(self, key: str, regions: Regions) -> Iterator[tuple[int, Iterator[str]]]:
        """One pass over `key` in record order: (index, canonical pieces of [start, end)) per index in `regions`."""
        ...


def check_usable(spans: list[RecordSpan], min_bp: int, eval_fraction: float, inputs: str) -> list[RecordSpan]:
    """`spans`, or a ValueError when no record has a training region of min_bp bp."""
    if not any(s.train_end >= min_bp for s in spans):
        longest = max((s.train_end for s in spans), default=0)
        raise ValueError(
            f"no record has a training region of at least min_bp={min_bp} bp (longest: {longest} bp "
            f"after holding out eval_fraction={eval_fraction}) in {inputs}"
        )
    return spans


def scan_records(paths: list[str], eval_fraction: float, min_bp: int, cache_dir: str | None = None) -> list[RecordSpan]:
    """The record lengths of FASTA inputs (genome_io.record_index: cached in `cache_dir` when given)."""
    spans = []
    for path in paths:
        for index, (name, length) in enumerate(record_index(path, cache_dir)):
            held_out = math.ceil(length * eval_fraction) if eval_fraction > 0 else 0
            spans.append(RecordSpan(path, index, name, length, length - held_out))
    return check_usable(spans, min_bp, eval_fraction, ", ".join(paths))


class FastaSource:
    """FASTA / FASTA.gz / bgzip / text files; each file is one key (one genome for `sampling`).

    Held out: the last `eval_fraction` of every record."""

    sharded_by_rank = False

    def __init__(self, paths: list[str], cache_dir: str | None = None):
        self.paths, self.cache_dir = list(paths), cache_dir

    def scan(self, eval_fraction: float, min_bp: int) -> list[RecordSpan]:
        return scan_records(self.paths, eval_fraction, min_bp, self.cache_dir)

    def regions(self, key: str, regions: Regions) -> Iterator[tuple[int, Iterator[str]]]:
        return _regions(key, regions)


SAMPLING_ALPHA = {"length": 1.0, "genome": 0.0}  # named `sampling` modes and their exponent


def sampling_alpha(sampling: str) -> float:
    """The exponent of a `sampling` option: 'length', 'genome' or a number in [0, 1]."""
    if sampling in SAMPLING_ALPHA:
        return SAMPLING_ALPHA[sampling]
    try:
        alpha = float(sampling)
    except ValueError:
        alpha = -1.0
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"sampling {sampling!r}: expected one of {sorted(SAMPLING_ALPHA)} or a number in [0, 1]")
    return alpha


def file_rates(spans: list[RecordSpan], alpha: float) -> dict[str, float]:
    """Per file, how many times its training bp is drawn per pass (1.0 for every file when alpha is 1).

    A file's share of the pass is bp**alpha / sum(bp**alpha); the pass has as many bp as the corpus.
    """
    bp: dict[str, int] = {}
    for span in spans:
        bp[span.path] = bp.get(span.path, 0) + span.train_end
    total = sum(bp.values())
    weights = {path: n ** alpha for path, n in bp.items()}
    norm = sum(weights.values())
    return {path: 1.0 if alpha == 1.0 else total * weights[path] / norm / bp[path] for path in bp}


def _regions(path: str, regions: dict[int, tuple[int, int]]) -> Iterator[tuple[int, Iterator[str]]]:
    """One pass over `path`: for each record index in `regions`, (index, pieces of [start, end))."""
    for index, (_, pieces) in enumerate(iter_record_chunks(path)):
        if index not in regions:
            for _ in pieces:  # skip the record without keeping it
                pass
            continue
        start, end = regions[index]

        def clipped(pieces=pieces, start=start, end=end):
            position = 0
            for piece in pieces:
                lo, hi = max(start - position, 0), min(end - position, len(piece))
                if lo < hi:
                    yield piece[lo:hi]
                position += len(piece)
            # the loop runs to the end of the record so that the reader is positioned at the next one

        yield index, clipped()


def _tile(pieces: Iterator[str], lengths: Iterator[int], min_bp: int) -> Iterator[str]:
    """Cut a stream of pieces into consecutive tiles of the given lengths; a last tile >= min_bp is kept.

    Tiles are sliced at a moving start, so a piece of a whole chromosome (a `datasets` row) is
    copied once per piece, not once per tile."""
    length = next(lengths)
    buffer, start = "", 0
    for piece in pieces:
        buffer = buffer[start:] + piece if start < len(buffer) else piece
        start = 0
        while len(buffer) - start >= length:
            yield buffer[start : start + length]
            start += length
            length = next(lengths)
    if len(buffer) - start >= min_bp:
        yield buffer[start:]


def _shard(ranks: bool = True) -> tuple[int, int]:
    """(index, count) of this reader among all processes (unless `ranks` is False) and DataLoader workers."""
    rank, world = 0, 1
    if ranks and torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    worker = get_worker_info()
    workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
    return rank * workers + worker_id, world * workers


class GenomeCropStream(IterableDataset):
    """Endless stream of masked, tokenized training crops: pass after pass over the corpus.

    Everything random (offsets, lengths, strands, order, masks) comes from one generator seeded
    by (seed, pass), so the stream is a pure function of the seed: Trainer resumes a run by
    replaying it up to the checkpoint's step, and gets exactly the batches it would have seen.
    """

    def __init__(
        self,
        spans: list[RecordSpan],
        tokenizer,
        min_bp: int,
        max_bp: int,
        rc_prob: float = 0.5,
        max_n_fraction: float = 0.1,
        seed: int = 42,
        mlm_probability: float = 0.15,
        group_size: int = 8,
        shuffle_buffer: int = 4096,
        groups_per_sort: int = 32,
        sampling: str = "length",
        source: RecordSource | None = None,
    ):
        self.source: RecordSource = source if source is not None else FastaSource([])
        self.spans = [s for s in spans if s.train_end >= min_bp]
        self.rates = file_rates(self.spans, sampling_alpha(sampling))
        self.tokenizer = tokenizer
        self.min_bp, self.max_bp = min_bp, max_bp
        self.rc_prob, self.max_n_fraction = rc_prob, max_n_fraction
        self.seed = seed
        self.masker = MLMMasker(tokenizer, mlm_probability)
        self.group_size, self.shuffle_buffer, self.groups_per_sort = group_size, shuffle_buffer, groups_per_sort

    def _crops(self, rng: random.Random) -> Iterator[str]:
        regions: dict[str, dict[int, tuple[int, int]]] = {}
        for span in self.spans:  # a random offset per record and epoch
            offset = rng.randrange(0, max(1, min(self.max_bp, span.train_end - self.min_bp + 1)))
            regions.setdefault(span.path, {})[span.index] = (offset, span.train_end)
        lengths = iter(lambda: rng.randint(self.min_bp, self.max_bp), None)

        def file_crops(path):
            repeats = max(1, math.ceil(self.rates[path]))
            keep = self.rates[path] / repeats  # 1.0 at the default: no draw, the stream is unchanged
            for repeat in range(repeats):
                if repeat:  # fresh random offsets for every further tiling of the file
                    for index, (_, end) in regions[path].items():
                        span_length = end
                        regions[path][index] = (rng.randrange(0, max(1, min(self.max_bp, span_length - self.min_bp + 1))), end)
                for _, pieces in self.source.regions(path, regions[path]):
                    for crop in _tile(pieces, lengths, self.min_bp):
                        if keep >= 1.0 or rng.random() < keep:
                            yield crop

        streams = [file_crops(path) for path in regions]
        counts = self.pass_counts = {"kept": 0, "skipped": 0}  # of the pass under way (for error messages)
        while streams:  # round-robin over files so that organisms mix
            for stream in list(streams):
                crop = next(stream, None)
                if crop is None:
                    streams.remove(stream)
                elif crop.count("N") <= self.max_n_fraction * len(crop):
                    counts["kept"] += 1
                    yield reverse_complement(crop) if rng.random() < self.rc_prob else crop
                else:
                    counts["skipped"] += 1

    def _shuffled(self, rng: random.Random) -> Iterator[str]:
        buffer: list[str] = []
        for crop in self._crops(rng):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(crop)
                continue
            i = rng.randrange(len(buffer))
            yield buffer[i]
            buffer[i] = crop
        rng.shuffle(buffer)
        yield from buffer

    def _groups(self, rng: random.Random) -> Iterator[list[list[int]]]:
        """Batches of `group_size` tokenized crops of similar length, in shuffled order."""
        pending: list[str] = []

        def flush():
            ids = self.tokenizer(pending, add_special_tokens=True)["input_ids"]
            ids.sort(key=len)
            groups = [ids[i : i + self.group_size] for i in range(0, len(ids) - self.group_size + 1, self.group_size)]
            rng.shuffle(groups)
            return groups

        for crop in self._shuffled(rng):
            pending.append(crop)
            if len(pending) == self.group_size * self.groups_per_sort:
                yield from flush()
                pending = []
        if len(pending) >= self.group_size:
            yield from flush()

    def passes(self, count: int | None = None) -> Iterator[dict]:
        """The stream, limited to `count` passes over the corpus (None: endless)."""
        shard_index, num_shards = _shard(ranks=not self.source.sharded_by_rank)
        n = 0
        for pass_index in itertools.count() if count is None else range(count):
            rng = random.Random(f"{self.seed}-{pass_index}")
            generator = torch.Generator().manual_seed(rng.getrandbits(62))
            mine = 0
            for group in self._groups(rng):
                if n % num_shards == shard_index:
                    mine += 1
                    for ids in group:
                        masked, labels = self.masker(torch.tensor(ids), generator)
                        yield {"input_ids": masked, "labels": labels}
                n += 1
            if mine == 0:  # every later pass would be as empty: the stream would never yield again
                raise EmptyPassError(
                    f"one pass over the training data gives no batch{' to reader ' + str(shard_index) if num_shards > 1 else ''}: "
                    f"{self.pass_counts['kept']} crops kept, {self.pass_counts['skipped']} skipped (more than "
                    f"max_n_fraction={self.max_n_fraction} N), batch size {self.group_size}"
                    f"{f' on each of {num_shards} readers' if num_shards > 1 else ''}; give more sequence, a smaller "
                    "batch size or shorter crops (--max_bp)"
                )

    def __iter__(self):
        return self.passes()


def heldout_examples(
    spans: list[RecordSpan], tokenizer, window_bp: int, max_examples: int, seed: int = 0, mlm_probability: float = 0.15,
    max_n_fraction: float = 0.1, source: RecordSource | None = None,
) -> list[dict]:
    """The fixed evaluation set: the held-out tail of each record tiled into window_bp pieces.

    Windows with more than max_n_fraction N are skipped (the rule of the training crops); at most max_examples are kept (evenly spread).
    Masks are drawn once here (seeded), so every evaluation scores the same positions.
    """
    windows = []
    regions: dict[str, dict[int, tuple[int, int]]] = {}
    for span in spans:
        regions.setdefault(span.path, {})[span.index] = (span.train_end, span.length)
    for path, file_regions in regions.items():
        for _, pieces in (source or FastaSource([])).regions(path, file_regions):
            windows.extend(_tile(pieces, iter(lambda: window_bp, None), window_bp // 4))
    windows = [w for w in windows if w.count("N") <= max_n_fraction * len(w)]
    if not windows:
        raise ValueError("the held-out regions hold no usable window; raise eval_fraction or give eval files")
    if len(windows) > max_examples:
        step = len(windows) / max_examples
        windows = [windows[int(i * step)] for i in range(max_examples)]
    generator = torch.Generator().manual_seed(seed)
    masker = MLMMasker(tokenizer, mlm_probability)
    examples = []
    for ids in tokenizer(windows, add_special_tokens=True)["input_ids"]:
        input_ids, labels = masker(torch.tensor(ids), generator)
        examples.append({"input_ids": input_ids.tolist(), "labels": labels.tolist()})
    return examples


class MLMMasker:
    """BERT masking: `mlm_probability` of the non-special tokens are chosen; of those 80% become
    [MASK], 10% a random non-special token and 10% stay. Labels are the original ids at the
    chosen positions and IGNORE_INDEX elsewhere."""

    def __init__(self, tokenizer, mlm_probability: float = 0.15):
        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.mlm_probability = mlm_probability

    def __call__(self, ids: torch.Tensor, generator: torch.Generator):
        """ids (..., L) -> (masked ids, labels)."""
        eligible = ids >= SPECIAL_IDS_BELOW
        chosen = eligible & (torch.rand(ids.shape, generator=generator) < self.mlm_probability)
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
        roll = torch.rand(ids.shape, generator=generator)
        random_ids = torch.randint(SPECIAL_IDS_BELOW, self.vocab_size, ids.shape, generator=generator)
        masked = torch.where(chosen & (roll < 0.8), torch.full_like(ids, self.mask_id), ids)
        masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, masked)
        return masked, labels


class MLMCollator:
    """Pads masked examples ({"input_ids", "labels"}) into a batch and counts the padding."""

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_token_id
        self.real_tokens = 0
        self.padded_tokens = 0

    def __call__(self, examples: list[dict]) -> dict:
        length = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, :n] = torch.as_tensor(e["input_ids"])
            labels[row, :n] = torch.as_tensor(e["labels"])
            attention_mask[row, :n] = 1
        self.real_tokens += int(attention_mask.sum())
        self.padded_tokens += attention_mask.numel()
        return {"input_ids": ids, "attention_mask": attention_mask, "labels": labels}

    def padding_fraction(self) -> float:
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0
