"""DNA tokenizers built on HF `tokenizers`: the BPE tokenizer (DNABERT-2) and k-mer baselines.

Lives here: the normalizer, pre-tokenizers, special tokens and post-processor that every DNA
tokenizer of this project shares; BPE training from an iterator of words; k-mer vocabularies;
writing the transformers files. Not here: the alphabet and which letter reads as which
(dna_alphabet.py, from which the normalizer is built), reading genomes (genome_io.py) or the CLI
(train_tokenizer.py).

Behaviour of the tokenizers written here (documented in the README):
- Special tokens keep the original ids: [UNK]=0 [CLS]=1 [SEP]=2 [PAD]=3 [MASK]=4. A sequence is
  encoded as [CLS] A [SEP]; a pair as [CLS] A [SEP] B [SEP] with token type 1 for B.
- Normalization: ASCII whitespace is removed (it carries no meaning inside DNA), lowercase
  equals uppercase (soft-masked repeats read as plain sequence), U reads as T, and the IUPAC
  ambiguity codes R Y K M S W B D H V read as N.
- N is a token of its own (not [UNK]) and never part of a merge (training splits words at N), so
  each N is one token. Any other character (digits, punctuation) becomes [UNK].
- Special tokens are matched before normalization, so "ACGT[MASK]ACGT" contains one [MASK].
"""

import itertools
import json
import os
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from .dna_alphabet import BASES, letters_reading_as

SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]  # ids 0..4, as in the original
UNK, CLS, SEP, PAD, MASK = SPECIAL_TOKENS
ALPHABET = [*BASES, "N"]  # the canonical letters, each a token of its own
# One normalizer rule per canonical letter, in this order (the classes first): the order and the
# LETTERS order of dna_alphabet.py keep the serialized normalizer byte-identical to the shipped
# tokenizer.json (tests/test_tokenizer.py checks both the JSON and the ids).
NORMALIZER_RULE_ORDER = "TNACG"
# The tokenizer's model_max_length: None = not set. The model has no position limit (ALiBi), so a
# limit here would only make transformers print a false "indexing errors" warning for long inputs.
# Truncate with an explicit max_length; embed() windows long sequences.
MODEL_MAX_LENGTH = None


class CorpusTooSmallError(ValueError):
    """The training corpus has too few distinct pairs to reach the requested vocabulary size."""


# ASCII whitespace: what sequence files and CSVs contain. Unicode spaces become [UNK] (visible, not
# dropped); the full Unicode `\s+` class costs about three times as much per pass (BENCHMARKS.md).
WHITESPACE = r"[ \t\n\r\f\v]+"


def dna_normalizer() -> normalizers.Normalizer:
    """Map every spelling of a base onto A, C, G, T or N, and drop whitespace.

    Every `Replace` is one pass over the text, whether it matches or not, and a pass costs about 2%
    of encoding time; so there is exactly one rule per output symbol (six passes).
    """
    rules = [normalizers.Replace(Regex(WHITESPACE), "")]
    for symbol in NORMALIZER_RULE_ORDER:
        sources = letters_reading_as(symbol)  # e.g. "tuU" for T; from the one table in dna_alphabet.py
        pattern = sources if len(sources) == 1 else Regex(f"[{sources}]")
        rules.append(normalizers.Replace(pattern, symbol))
    return normalizers.Sequence(rules)


def _finish(tokenizer: Tokenizer) -> Tokenizer:
    """Attach the post-processor (CLS/SEP templates) and a decoder that joins tokens without spaces."""
    ids = {t: tokenizer.token_to_id(t) for t in (CLS, SEP)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, ids[CLS]), (SEP, ids[SEP])],
    )
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def train_bpe(words: Iterable[str], vocab_size: int, min_frequency: int = 2, show_progress: bool = True) -> Tokenizer:
    """Train the DNABERT-2 BPE tokenizer on an iterator of DNA words (streamed, never held in full)."""
    minimum = len(SPECIAL_TOKENS) + len(ALPHABET)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is below the {len(SPECIAL_TOKENS)} special tokens plus the "
            f"{len(ALPHABET)}-letter alphabet ({minimum})"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = dna_normalizer()
    # Training only: cut runs of N out of the words so that N never enters a merge. Merges without
    # N cannot cross an N either, so the saved tokenizer drops this split (one pass less per input).
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("N+"), behavior="removed")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=ALPHABET,
        limit_alphabet=len(ALPHABET),
        show_progress=show_progress,
    )
    tokenizer.train_from_iterator(words, trainer)
    if tokenizer.get_vocab_size() != vocab_size:
        raise CorpusTooSmallError(
            f"the corpus supports only {tokenizer.get_vocab_size()} tokens at min_frequency={min_frequency}, "
            f"not vocab_size={vocab_size}; give more sequence or ask for a smaller vocabulary"
        )
    tokenizer.pre_tokenizer = None
    return _finish(tokenizer)


def kmer_tokenizer(k: int, overlap: bool) -> Tokenizer:
    """WordLevel k-mer tokenizer with the same special tokens, for the BPE-vs-k-mer ablation.

    Non-overlapping: the sequence is cut into consecutive k-mers; a shorter tail becomes one token
    of its own length (every A/C/G/T word of length 1..k is in the vocabulary; words with N are [UNK]).
    Overlapping (DNABERT-1 style): the input must already be space-separated overlapping k-mers,
    as `overlapping_kmers()` writes them, because a tokenizer.json cannot duplicate characters.
    """
    if not 1 <= k <= 8:
        raise ValueError(f"k-mer size must be between 1 and 8, got {k}")
    words = [
        "".join(p) for n in range(1, k + 1) if not overlap or n == k for p in itertools.product(BASES, repeat=n)
    ]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    if overlap:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(c.lower(), c) for c in ALPHABET])
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        tokenizer.normalizer = dna_normalizer()
        tokenizer.pre_tokenizer = pre_tokenizers.FixedLength(length=k)
    tokenizer = _finish(tokenizer)
    if overlap:
        tokenizer.decoder = None
    return tokenizer


def overlapping_kmers(seq: str, k: int) -> str:
    """'ACGTA', 3 -> 'ACG CGT GTA': the input format of the overlapping k-mer tokenizer."""
    return " ".join(seq[i : i + k] for i in range(len(seq) - k + 1))


def save_for_transformers(tokenizer: Tokenizer, output_dir: str, model_max_length: int | None = MODEL_MAX_LENGTH) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json.

    `tokenizer_class` is pinned to PreTrainedTokenizerFast so that transformers 4.x and 5.x both
    load it with AutoTokenizer and no remote code.
    """
    os.makedirs(output_dir, exist_ok=True)
    tokenizer.save(os.path.join(output_dir, "tokenizer.json"))
    special = {"unk_token": UNK, "cls_token": CLS, "sep_token": SEP, "pad_token": PAD, "mask_token": MASK}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        **({"model_max_length": model_max_length} if model_max_length else {}),
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    for name, content in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(output_dir, name), "w") as f:
            json.dump(content, f, indent=2)
            f.write("\n")


def load_tokenizer(path: str):
    """Load a tokenizer folder (or Hub repo id) as PreTrainedTokenizerFast.

    Unlike AutoTokenizer this never reads the model's config.json (which names remote code), and
    it is the same class on transformers 4.x and 5.x.
    """
    from transformers import PreTrainedTokenizerFast

    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "tokenizer.json")):
        raise FileNotFoundError(f"{path}: no tokenizer.json")
    return PreTrainedTokenizerFast.from_pretrained(path)


def bp_per_token(tokenizer: Tokenizer, sequences: list[str]) -> float:
    """Mean base pairs per token over `sequences`, not counting [CLS]/[SEP]."""
    encodings = tokenizer.encode_batch(sequences, add_special_tokens=False)
    tokens = sum(len(e.ids) for e in encodings)
    return sum(len(s) for s in sequences) / max(tokens, 1)
