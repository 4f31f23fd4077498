"""The nucleotide alphabet: which letters exist, how each pairs, and how each is spelled canonically.

Lives here, once, for the model code (embedding.py), reading genomes (genome_io.py) and the
tokenizer normalizer (dna_tokenizer.py): the IUPAC letter sets, the complement table, the
canonical mapping and `reverse_complement`. Import them; never re-spell a table elsewhere.
Not here: reading files (genome_io.py), tokenization (dna_tokenizer.py) or anything torch. This
file is remote code shipped in every saved checkpoint, so it imports nothing but the standard
library.

Conventions
- Letters: A C G T, U (RNA), N, and the IUPAC ambiguity codes R Y K M S W B D H V, in either case.
- Complement: A<->T, C<->G, U->A (an RNA U pairs with A; A's partner stays T), R<->Y, K<->M,
  B<->V, D<->H; S, W and N are their own complements. Case is kept (a -> t).
- Canonical: upper case, U -> T, every ambiguity code -> N; so A, C, G, T, N only.
"""

BASES = "ACGT"
AMBIGUITY_CODES = "RYKMSWBDHV"  # IUPAC two-, three- and four-base codes (N is kept as a letter of its own)
# Every accepted letter, in the order that the tokenizer normalizer lists its character classes.
LETTERS = "acgtun" + "ACGTUN" + AMBIGUITY_CODES + AMBIGUITY_CODES.lower()
IUPAC_LETTERS = frozenset(LETTERS)

# Uppercase letter -> its complement. The one complement table of the project.
_COMPLEMENT_UPPER = {
    "A": "T", "T": "A", "U": "A", "C": "G", "G": "C", "N": "N",
    "R": "Y", "Y": "R", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "S": "S", "W": "W",
}
COMPLEMENT = {**_COMPLEMENT_UPPER, **{k.lower(): v.lower() for k, v in _COMPLEMENT_UPPER.items()}}

# Letter -> the canonical letter it reads as (A, C, G, T or N).
CANONICAL = {c: ("T" if c.upper() == "U" else "N" if c.upper() in AMBIGUITY_CODES else c.upper()) for c in LETTERS}

assert set(COMPLEMENT) == IUPAC_LETTERS == set(CANONICAL)

_COMPLEMENT_TRANSLATION = str.maketrans(COMPLEMENT)
_CANONICAL_TRANSLATION = str.maketrans(CANONICAL)


def canonical(seq: str) -> str:
    """'acgURy' -> 'ACGTNN': upper case, U -> T, ambiguity codes -> N. Other characters pass unchanged."""
    return seq.translate(_CANONICAL_TRANSLATION)


def reverse_complement(seq: str) -> str:
    """'ACGUn' -> 'nACGT': the reverse complement of IUPAC letters, case kept. Other characters pass unchanged."""
    return seq.translate(_COMPLEMENT_TRANSLATION)[::-1]


def letters_reading_as(symbol: str) -> str:
    """The letters other than `symbol` itself whose canonical form is `symbol`, in LETTERS order ('T' -> 'tuU')."""
    return "".join(c for c in LETTERS if CANONICAL[c] == symbol and c != symbol)
