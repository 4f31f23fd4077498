"""Variant effect scores and in-silico saturation mutagenesis with a DNABERT-2 checkpoint.

Lives here: the reference genome (indexed FASTA through pyfaidx), variant checks against it, the
ref/alt windows around a variant, the scores (`pll_ratio`, embedding distances, classifier deltas),
`score_variants()` and `saturation_mutagenesis()` for notebooks, and the mutagenesis heatmap.
Not here: reading VCF/CSV files or writing result files (score_variants.py, mutagenesis.py),
pooling embeddings (embedding.py), the model (modeling_bert.py).

Why `pll_ratio` is defined the way it is
    A BPE model cannot mask one base: a single-base change re-tokenizes its neighbourhood, so the
    ref and alt windows are different token sequences, often of different lengths. The score is
    therefore a difference of two pseudo-log-likelihoods (PLL; Salazar et al. 2020), each computed
    on its own tokenization:

        pll_ratio = sum_{i in S_alt} log p(alt_i | alt without i) - sum_{i in S_ref} log p(ref_i | ref without i)

    where each token i is replaced by [MASK] on its own (one masked copy per token) and
    log p is the MLM head's log-softmax at that position for the token that was there.
    S_ref / S_alt are the tokens whose bp span overlaps the variant's allele plus `flank_bp` on
    each side. Tokens far from the variant are the same in both windows and contribute (almost)
    the same to both sums, so they are left out to save compute. Because token spans end where the
    tokenizer puts them, the two sets are then grown until they cover the *same* flanking
    sequence: the bp stretch [lo, hi) covered by S_ref, mapped across the allele, is the one
    covered by S_alt (see `scored_tokens`). Both sums then explain exactly the same bases apart
    from the allele itself, and the definition is antisymmetric: swapping ref and alt negates it.
    A negative pll_ratio means the model finds the alt sequence less likely than the reference.
    The numbers of tokens in S_ref and S_alt are reported (`pll_tokens_ref`, `pll_tokens_alt`)
    with the length of the common stretch in the reference (`pll_span_bp`).

Other scores
    embedding_cosine (cosine distance, 1 - cos) and embedding_l2 between the mean-pooled ref and
    alt window embeddings (embedding.embed; any layer; optional strand averaging).
    With a fine-tuned sequence classifier (no MLM head): delta_logit_<k> and delta_prob_<k>, alt
    minus ref, for every class k.

Saturation mutagenesis (`saturation_mutagenesis`)
    pll_ratio of all 3 x L substitutions of one sequence, the whole sequence as the window. Every
    alt sequence is different, so each of its scored tokens costs one forward pass of the whole
    sequence: the work grows with flank_bp (for 300 bp of human mtDNA, 24,206 masked-token terms at
    flank 32, 3,034 at flank 0). The ref terms are shared by all 3 x L alts, and a masked alt input
    that equals another masked input (the substitution re-tokenizes only the masked token) shares
    its forward pass too (`masked_token_logprobs` deduplicates masked inputs), which leaves 11,462
    forward rows at flank 32 and 876 at flank 0. Mutagenesis therefore defaults to flank_bp 0
    (DEFAULT_MUTAGENESIS_FLANK_BP: only the tokens that overlap the base, grown to a common
    stretch as above): as many forward rows as the classifier mode's 900 (18.8 CPU-s for
    300 bp on a loaded 2-core machine, BENCHMARKS.md); pass flank_bp=32 (the variant-scoring default) to also score how the change
    alters its neighbours' likelihood.

Windows: `window_bp` centred on the middle of the REF allele, clipped (not shifted) at contig ends
and never shorter than the allele; the alt window is the ref window with the allele substituted.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .chunked_output import atomic_write
from .dna_tokenizer import BASES
from .embedding import embed
from .modeling_bert import IGNORE_INDEX

logger = logging.getLogger(__name__)

DEFAULT_WINDOW_BP = 1024
DEFAULT_FLANK_BP = 32
DEFAULT_MUTAGENESIS_FLANK_BP = 0  # 3 x L variants of one sequence: see "Saturation mutagenesis" above
DEFAULT_BATCH_SIZE = 64
ALLELE_LETTERS = frozenset("ACGTN")
MLM_SCORES = ("pll_ratio",)
EMBEDDING_SCORES = ("embedding",)
CLASSIFIER_SCORES = ("delta_logit",)
ALL_SCORES = MLM_SCORES + EMBEDDING_SCORES + CLASSIFIER_SCORES
MUTAGENESIS_MODES = ("classifier", "pll_ratio")
_GZIP_MAGIC = b"\x1f\x8b"


class VariantError(ValueError):
    """A variant that does not fit the reference; the message names the variant and what was expected."""


class RefMismatchError(VariantError):
    """REF differs from the reference genome at the variant's position."""


# ---------------------------------------------------------------------------------------------
# Variants, reference genome, windows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    chrom: str
    pos: int  # 1-based position of the first REF base (VCF convention)
    ref: str
    alt: str

    def __str__(self) -> str:
        return f"{self.chrom}:{self.pos} {self.ref}>{self.alt}"


@dataclass(frozen=True)
class VariantWindow:
    """The ref and alt sequences around one variant; the allele starts at `start` in both."""

    ref_seq: str
    alt_seq: str
    start: int  # 0-based offset of the allele in both windows
    ref_len: int
    alt_len: int
    window_start: int = 0  # 0-based contig coordinate of ref_seq[0]

    def swapped(self) -> VariantWindow:
        """The same change read backwards (alt -> ref): same flank and window."""
        return VariantWindow(self.alt_seq, self.ref_seq, self.start, self.alt_len, self.ref_len, self.window_start)


def window_from_sequence(sequence: str, start: int, ref: str, alt: str) -> VariantWindow:
    """A VariantWindow over a whole sequence: `ref` must be what `sequence` holds at `start` (0-based)."""
    sequence = sequence.upper()
    check_allele(ref, "REF")
    check_allele(alt, "ALT")
    if sequence[start : start + len(ref)] != ref.upper():
        raise RefMismatchError(
            f"REF {ref!r} at offset {start} differs from the sequence there ({sequence[start:start + len(ref)]!r})"
        )
    alt_seq = sequence[:start] + alt.upper() + sequence[start + len(ref) :]
    return VariantWindow(sequence, alt_seq, start, len(ref), len(alt))


def check_allele(allele: str, field: str) -> None:
    if not allele or not ALLELE_LETTERS.issuperset(allele.upper()):
        raise VariantError(f"{field} {allele!r}: expected a non-empty allele of the letters A, C, G, T, N")


class ReferenceGenome:
    """Random access to an indexed FASTA (plain or bgzip) through pyfaidx; nothing is read into memory.

    The .fai (and, for bgzip, .gzi) index is built on first use beside the FASTA, or under
    `cache_dir` when that folder is read-only (by its mode bits, even for root). A plain-gzip FASTA has no random access: it is
    decompressed once, streamed, into `cache_dir` (logged), and read from there.
    """

    def __init__(self, path: str, cache_dir: str | None = None) -> None:
        import pyfaidx

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
        self.path = path
        cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "dnabert2", "fasta")
        source = path
        if _is_plain_gzip(path):
            source = _decompressed_copy(path, cache_dir)
        index = gzi = None
        folder = os.path.dirname(os.path.abspath(source))
        if not _writable(folder) and not os.path.isfile(source + ".fai"):
            os.makedirs(cache_dir, exist_ok=True)
            stem = os.path.join(cache_dir, _cache_name(source))
            index, gzi = stem + ".fai", stem + ".gzi"
            logger.warning("%s: folder not writable; the FASTA index goes to %s", source, index)
        try:
            self.fasta = pyfaidx.Fasta(
                source, indexname=index, gzi_indexname=gzi, as_raw=True, sequence_always_upper=True,
                strict_bounds=False, read_long_names=False,
            )
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError) as e:
            raise VariantError(f"{path}: cannot index this FASTA ({e})") from None
        self.lengths = {name: len(record) for name, record in self.fasta.records.items()}

    def length(self, chrom: str) -> int:
        if chrom not in self.lengths:
            shown = ", ".join(list(self.lengths)[:10]) + (" ..." if len(self.lengths) > 10 else "")
            raise VariantError(f"unknown contig {chrom!r}; {self.path} has: {shown}")
        return self.lengths[chrom]

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Upper-case bases [start, end) (0-based, end exclusive) of `chrom`."""
        length = self.length(chrom)
        if not 0 <= start <= end <= length:
            raise VariantError(f"{chrom}:[{start}, {end}) is outside the contig (length {length:,})")
        return str(self.fasta[chrom][start:end])

    def check(self, variant: Variant) -> None:
        """Raise VariantError (unknown contig, out of range) or RefMismatchError for a variant."""
        check_allele(variant.ref, "REF")
        check_allele(variant.alt, "ALT")
        length = self.length(variant.chrom)
        last = length - len(variant.ref) + 1
        if not 1 <= variant.pos <= last:
            raise VariantError(
                f"position {variant.pos:,} with REF of {len(variant.ref)} bp is out of range for "
                f"{variant.chrom} (length {length:,}); expected 1..{last:,}"
            )
        actual = self.fetch(variant.chrom, variant.pos - 1, variant.pos - 1 + len(variant.ref))
        if actual != variant.ref.upper():
            raise RefMismatchError(f"REF {variant.ref} disagrees with the FASTA, which has {actual} at {variant.chrom}:{variant.pos}")

    def window(self, variant: Variant, window_bp: int = DEFAULT_WINDOW_BP) -> VariantWindow:
        """The checked variant's ref/alt windows (see the module docstring)."""
        self.check(variant)
        start, end = window_bounds(self.lengths[variant.chrom], variant.pos - 1, len(variant.ref), window_bp)
        ref_seq = self.fetch(variant.chrom, start, end)
        offset = variant.pos - 1 - start
        alt_seq = ref_seq[:offset] + variant.alt.upper() + ref_seq[offset + len(variant.ref) :]
        return VariantWindow(ref_seq, alt_seq, offset, len(variant.ref), len(variant.alt), start)


def window_bounds(contig_length: int, allele_start: int, allele_len: int, window_bp: int) -> tuple[int, int]:
    """[start, end) of a window_bp window centred on the allele, clipped at the contig ends."""
    if window_bp < 1:
        raise ValueError(f"window_bp must be >= 1, got {window_bp}")
    start = allele_start + allele_len // 2 - window_bp // 2
    start, end = max(0, start), min(contig_length, start + window_bp)
    return min(start, allele_start), max(end, allele_start + allele_len)


def _writable(folder: str) -> bool:
    """Writable, and not marked read-only: root passes os.access on any folder, so the mode bits count too."""
    return os.access(folder, os.W_OK) and bool(stat.S_IMODE(os.stat(folder).st_mode) & 0o222)


def _is_plain_gzip(path: str) -> bool:
    """gzip but not bgzip (bgzip blocks carry the 'BC' extra subfield)."""
    with open(path, "rb") as f:
        head = f.read(18)
    if not head.startswith(_GZIP_MAGIC):
        return False
    has_extra = len(head) > 3 and head[3] & 4
    return not (has_extra and head[12:14] == b"BC")


def _cache_name(path: str) -> str:
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:16] + "-" + os.path.basename(path)


def _decompressed_copy(path: str, cache_dir: str) -> str:
    """Stream a plain-gzip FASTA into cache_dir once (keyed by path, size and mtime)."""
    os.makedirs(cache_dir, exist_ok=True)
    name = _cache_name(path)
    target = os.path.join(cache_dir, name[: -3] if name.endswith(".gz") else name + ".fa")
    if not os.path.isfile(target):
        logger.warning(
            "%s is plain gzip, which has no random access; decompressing it once to %s "
            "(compress with bgzip instead to read it in place)", path, target,
        )

        def gunzip(tmp: str) -> None:
            with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)

        atomic_write(target, gunzip)
    return target


# ---------------------------------------------------------------------------------------------
# Which tokens pll_ratio scores
# ---------------------------------------------------------------------------------------------


def _overlapping(spans: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Indices of tokens whose [start, end) span overlaps [lo, hi)."""
    return np.flatnonzero((spans[:, 0] < hi) & (spans[:, 1] > lo))


def scored_tokens(
    ref_spans: np.ndarray, alt_spans: np.ndarray, start: int, ref_len: int, alt_len: int, flank_bp: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(ref token indices, alt token indices, lo, hi): the token sets S_ref and S_alt of pll_ratio.

    Start from the allele plus flank_bp each side; then grow [lo, hi) (hi in ref coordinates;
    the alt end is hi - ref_len + alt_len) until the tokens overlapping it cover the same flanking
    bases in both windows. Symmetric in (ref, alt) by construction.
    """
    if flank_bp < 0:
        raise ValueError(f"flank_bp must be >= 0, got {flank_bp}")
    shift = alt_len - ref_len
    lo, hi = start - flank_bp, start + ref_len + flank_bp
    while True:
        ref_idx = _overlapping(ref_spans, lo, hi)
        alt_idx = _overlapping(alt_spans, lo, hi + shift)
        new_lo = min(lo, int(ref_spans[ref_idx, 0].min()), int(alt_spans[alt_idx, 0].min()))
        new_hi = max(hi, int(ref_spans[ref_idx, 1].max()), int(alt_spans[alt_idx, 1].max()) - shift)
        if (new_lo, new_hi) == (lo, hi):
            return ref_idx, alt_idx, max(lo, 0), min(hi, int(ref_spans[-1, 1]))
        lo, hi = new_lo, new_hi


# ---------------------------------------------------------------------------------------------
# Model plumbing
# ---------------------------------------------------------------------------------------------


def model_kind(model) -> str:
    """'mlm' (has an MLM head), 'classifier' (sequence classifier) or 'encoder' (bare BertModel)."""
    if hasattr(model, "cls") and hasattr(model, "bert"):
        return "mlm"
    if hasattr(model, "classifier") and hasattr(model, "bert"):
        return "classifier"
    return "encoder"


def available_scores(model) -> tuple[str, ...]:
    kind = model_kind(model)
    return {"mlm": MLM_SCORES, "classifier": CLASSIFIER_SCORES, "encoder": ()}[kind] + EMBEDDING_SCORES


def load_scoring_model(path: str, dtype: str = "float32"):
    """(model, tokenizer) from a checkpoint folder: BertForSequenceClassification when its config
    names that architecture, else BertForMaskedLM. Uses this repo's model code."""
    from transformers.utils import logging as hf_logging

    from .configuration_bert import BertConfig
    from .dna_tokenizer import load_tokenizer
    from .modeling_bert import BertForMaskedLM, BertForSequenceClassification

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}; expected 'float32' or 'bfloat16'")
    config = BertConfig.from_pretrained(path)
    is_classifier = "BertForSequenceClassification" in (config.architectures or [])
    cls = BertForSequenceClassification if is_classifier else BertForMaskedLM
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a classifier checkpoint has no MLM head and vice versa: expected
    try:
        model = cls.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, load_tokenizer(path)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _tokenize(tokenizer, sequences: Sequence[str]):
    """Token ids (no specials) and (n, 2) bp spans for each sequence."""
    enc = tokenizer(list(sequences), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return enc["input_ids"], [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in enc["offset_mapping"]]


def masked_token_logprobs(
    model, tokenizer, requests: Sequence[tuple[Sequence[int], int]], batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """log p(token i | the sequence with token i masked) for each (token ids without specials, i).

    Requests are grouped by their *masked input* (the ids with token i replaced by [MASK]): one
    forward pass serves every request with that input, whatever token was there. So the ref window
    and the alt windows of a substitution that re-tokenizes only the masked token share one pass,
    and a ref window repeated across variants (saturation mutagenesis) is computed once. Masked
    inputs are sorted by length and batched; the MLM head runs only at the masked position
    (labels), so no (batch, L, vocab) tensor is built.
    """
    values = np.empty(len(requests), dtype=np.float64)
    if not len(requests):
        return values
    input_index: dict[tuple[int, ...], int] = {}  # masked input -> its index
    inputs: list[tuple[int, ...]] = []
    positions: list[int] = []  # per masked input: where [MASK] is, [CLS] included
    request_input = np.empty(len(requests), dtype=np.int64)  # (requests,): which masked input
    request_target = np.empty(len(requests), dtype=np.int64)  # (requests,): the token that was masked
    for r, (ids, i) in enumerate(requests):
        i = int(i)
        if not 0 <= i < len(ids):
            raise ValueError(f"masked position {i} is outside a sequence of {len(ids)} tokens (expected 0..{len(ids) - 1})")
        masked = (*ids[:i], tokenizer.mask_token_id, *ids[i + 1 :])
        k = input_index.setdefault(masked, len(inputs))
        if k == len(inputs):
            inputs.append(masked)
            positions.append(i + 1)  # +1: [CLS] comes first
        request_input[r], request_target[r] = k, ids[i]
    lengths = np.array([len(row) + 2 for row in inputs])  # (inputs,)
    order = np.argsort(lengths, kind="stable")  # masked inputs by length: little padding per batch
    rank = np.empty(len(inputs), dtype=np.int64)
    rank[order] = np.arange(len(inputs))
    request_rank = rank[request_input]  # (requests,): row of each request's input in the sorted run
    device = _device(model)
    for n, b in enumerate(range(0, len(inputs), batch_size)):
        batch = order[b : b + batch_size]  # (batch,) masked-input indices
        length = int(lengths[batch].max())
        ids = torch.full((len(batch), length), tokenizer.pad_token_id, dtype=torch.long)  # (batch, L)
        for row, k in enumerate(batch):
            ids[row, : lengths[k]] = torch.tensor([tokenizer.cls_token_id, *inputs[k], tokenizer.sep_token_id])
        mask = (torch.arange(length)[None, :] < torch.as_tensor(lengths[batch])[:, None]).long()  # (batch, L)
        pos = torch.as_tensor([positions[k] for k in batch])  # (batch,)
        arange = torch.arange(len(batch))
        labels = torch.full_like(ids, IGNORE_INDEX)  # (batch, L): marks the one position the head runs at
        labels[arange, pos] = tokenizer.pad_token_id  # any token id: only the position matters here
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1).double().cpu()  # (batch, vocab), in row order
        mine = np.flatnonzero(request_rank // batch_size == n)  # (k,) requests served by this batch
        rows = torch.as_tensor(request_rank[mine] - b)  # (k,) their row in the batch
        values[mine] = logp[rows, torch.as_tensor(request_target[mine])].numpy()
    return values


def _classifier_logits(model, tokenizer, sequences: Sequence[str], batch_size: int) -> np.ndarray:
    """(n, num_labels) float64 logits, sequences sorted by length and batched."""
    out = np.empty((len(sequences), model.config.num_labels), dtype=np.float64)
    order = sorted(range(len(sequences)), key=lambda k: len(sequences[k]))
    device = _device(model)
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        enc = tokenizer([sequences[k] for k in batch], padding=True, return_tensors="pt", verbose=False)
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits
        out[batch] = logits.float().double().cpu().numpy()  # (batch, num_labels)
    return out


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def score_windows(
    model,
    tokenizer,
    windows: Sequence[VariantWindow],
    scores: Iterable[str] | None = None,
    flank_bp: int = DEFAULT_FLANK_BP,
    layer: int = -1,
    rc_average: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Score prepared ref/alt windows; returns one array per output column, one row per window.

    scores: any of "pll_ratio" (MLM checkpoints), "embedding" (embedding_cosine, embedding_l2),
    "delta_logit" (classifiers: delta_logit_k and delta_prob_k); default: all the model supports.
    layer: hidden layer for the embeddings (-1: last; 0: the embedding layer).
    """
    allowed = available_scores(model)
    scores = tuple(allowed if scores is None else scores)
    for s in scores:
        if s not in allowed:
            raise ValueError(f"score {s!r} is not available for a {model_kind(model)} checkpoint; expected one of {allowed}")
    columns: dict[str, np.ndarray] = {}
    if not windows:
        return columns
    if "pll_ratio" in scores:
        columns.update(_pll_columns(model, tokenizer, windows, flank_bp, batch_size))
    if "embedding" in scores:
        encoder = model.bert if hasattr(model, "bert") else model
        seqs = [w.ref_seq for w in windows] + [w.alt_seq for w in windows]
        vectors = embed(encoder, tokenizer, seqs, pooling="mean", batch_size=batch_size, rc_average=rc_average,
                        layer=layer, progress=False).astype(np.float64)  # (2n, hidden)
        ref, alt = vectors[: len(windows)], vectors[len(windows) :]
        cos = (ref * alt).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(alt, axis=1))
        columns["embedding_cosine"] = 1.0 - cos
        columns["embedding_l2"] = np.linalg.norm(alt - ref, axis=1)
    if "delta_logit" in scores:
        logits = _classifier_logits(model, tokenizer, [w.ref_seq for w in windows] + [w.alt_seq for w in windows], batch_size)
        ref, alt = logits[: len(windows)], logits[len(windows) :]
        for k in range(logits.shape[1]):
            columns[f"delta_logit_{k}"] = alt[:, k] - ref[:, k]
        ref_prob, alt_prob = _softmax(ref), _softmax(alt)  # (n, classes)
        for k in range(logits.shape[1]):
            columns[f"delta_prob_{k}"] = alt_prob[:, k] - ref_prob[:, k]
    return columns


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))  # (n, classes)
    return e / e.sum(1, keepdims=True)


def _pll_columns(model, tokenizer, windows: Sequence[VariantWindow], flank_bp: int, batch_size: int) -> dict[str, np.ndarray]:
    seqs = [w.ref_seq for w in windows] + [w.alt_seq for w in windows]
    ids, spans = _tokenize(tokenizer, seqs)
    n = len(windows)
    requests, owners = [], []  # owners[j]: (window index, +1 for alt / -1 for ref)
    n_ref, n_alt, span_bp = (np.zeros(n, dtype=np.int64) for _ in range(3))
    for k, w in enumerate(windows):
        ref_idx, alt_idx, lo, hi = scored_tokens(spans[k], spans[n + k], w.start, w.ref_len, w.alt_len, flank_bp)
        n_ref[k], n_alt[k], span_bp[k] = len(ref_idx), len(alt_idx), hi - lo
        requests += [(ids[k], i) for i in ref_idx] + [(ids[n + k], i) for i in alt_idx]
        owners += [(k, -1.0)] * len(ref_idx) + [(k, 1.0)] * len(alt_idx)
    logp = masked_token_logprobs(model, tokenizer, requests, batch_size)
    ratio = np.zeros(n, dtype=np.float64)
    for (k, sign), value in zip(owners, logp):
        ratio[k] += sign * value
    return {"pll_ratio": ratio, "pll_tokens_ref": n_ref, "pll_tokens_alt": n_alt, "pll_span_bp": span_bp}


def score_variants(
    model,
    tokenizer,
    variants: Sequence[Variant | VariantWindow],
    reference: ReferenceGenome | str | None = None,
    window_bp: int = DEFAULT_WINDOW_BP,
    **kwargs,
) -> dict[str, np.ndarray]:
    """Scores for each variant (a Variant on `reference`, or a prepared VariantWindow); see score_windows."""
    if isinstance(reference, str):
        reference = ReferenceGenome(reference)
    windows = []
    for v in variants:
        if isinstance(v, VariantWindow):
            windows.append(v)
        elif reference is None:
            raise ValueError(f"variant {v} needs a reference genome (reference=FASTA path or ReferenceGenome)")
        else:
            windows.append(reference.window(v, window_bp))
    return score_windows(model, tokenizer, windows, **kwargs)


# ---------------------------------------------------------------------------------------------
# Saturation mutagenesis
# ---------------------------------------------------------------------------------------------


def saturation_mutagenesis(
    model,
    tokenizer,
    sequence: str,
    mode: str | None = None,
    target_class: int = 1,
    flank_bp: int = DEFAULT_MUTAGENESIS_FLANK_BP,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """(len(sequence), 4) effects of every single-base change, columns in BASES order (A, C, G, T).

    mode "classifier": delta logit of `target_class` (alt minus ref) for the whole sequence;
    mode "pll_ratio": pll_ratio with the whole sequence as the window (MLM checkpoints), flank_bp
    0 by default (module docstring, "Saturation mutagenesis").
    Default: "classifier" for a classifier, else "pll_ratio". The reference base's cell is 0; a
    position whose base is not A/C/G/T (e.g. N) is NaN in every column.
    """
    kind = model_kind(model)
    mode = mode or ("classifier" if kind == "classifier" else "pll_ratio")
    if mode not in MUTAGENESIS_MODES:
        raise ValueError(f"mode={mode!r}; expected one of {MUTAGENESIS_MODES}")
    needs = {"classifier": "classifier", "pll_ratio": "mlm"}[mode]
    if kind != needs:
        raise ValueError(f"mode {mode!r} needs a {needs} checkpoint, got a {kind}")
    sequence = sequence.upper()
    matrix = np.full((len(sequence), len(BASES)), np.nan)
    cells, windows = [], []
    for pos, base in enumerate(sequence):
        if base not in BASES:
            continue
        matrix[pos, BASES.index(base)] = 0.0
        for alt in BASES:
            if alt != base:
                cells.append((pos, BASES.index(alt)))
                windows.append(VariantWindow(sequence, sequence[:pos] + alt + sequence[pos + 1 :], pos, 1, 1))
    if mode == "classifier":
        if not 0 <= target_class < model.config.num_labels:
            raise ValueError(f"target_class={target_class}; expected 0..{model.config.num_labels - 1}")
        logits = _classifier_logits(model, tokenizer, [sequence] + [w.alt_seq for w in windows], batch_size)
        values = logits[1:, target_class] - logits[0, target_class]
    else:
        values = _pll_columns(model, tokenizer, windows, flank_bp, batch_size)["pll_ratio"]
    for (pos, col), value in zip(cells, values):
        matrix[pos, col] = value
    return matrix


def plot_mutagenesis(matrix: np.ndarray, sequence: str, path: str, title: str = "", label: str = "effect") -> None:
    """Heatmap PNG: positions on x, bases A/C/G/T on y, diverging colours centred at 0, reference base dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .chunked_output import atomic_write

    n = len(sequence)
    limit = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
    limit = limit or 1.0
    fig, ax = plt.subplots(figsize=(min(4 + n * 0.06, 40), 2.6))
    image = ax.imshow(matrix.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                      extent=(0.5, n + 0.5, len(BASES) - 0.5, -0.5))
    ref_x = [i + 1 for i, b in enumerate(sequence.upper()) if b in BASES]
    ref_y = [BASES.index(b) for b in sequence.upper() if b in BASES]
    ax.scatter(ref_x, ref_y, s=4, c="black", marker="o", linewidths=0, label="reference base")
    ax.set_yticks(range(len(BASES)), list(BASES))
    ax.set_xlabel("position (bp)")
    ax.set_ylabel("alt base")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=2, frameon=False, bbox_to_anchor=(1.0, 1.22))
    fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03).set_label(label, fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
