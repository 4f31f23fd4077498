"""Pretraining data: `--sampling` shares of each genome file, and the N rule of held-out windows.

`--sampling`: each genome file's share of the pretraining crops, checked on real bundled genomes.

Crops are attributed to their genome by searching them in the genome's sequence (an independent
check: the stream never says where a crop came from). Train bp of the three files (2% held out):
E. coli 98,000, lambda 47,531, human mito 16,237.
"""

import random

import pytest

from helpers import REPO_ROOT
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
from dnabert2.pretraining_data import GenomeCropStream, heldout_examples, sampling_alpha, scan_records

GENOMES = {name: str(REPO_ROOT / "data" / "genomes" / f) for name, f in [
    ("ecoli", "ecoli_k12_W3110_first100kbp.fa.gz"), ("lambda", "phage_lambda.fa.gz"), ("mito", "human_mito.fa.gz")]}


@pytest.fixture(scope="module")
def sequences():
    return {name: "".join(seq for _, seq in iter_records([path])).upper() for name, path in GENOMES.items()}


def bp_shares(sampling: str, sequences, passes: int = 3) -> dict[str, float]:
    spans = scan_records(list(GENOMES.values()), 0.02, 200)
    stream = GenomeCropStream(spans, load_tokenizer(str(REPO_ROOT)), 200, 600, rc_prob=0.0, sampling=sampling)
    bp = dict.fromkeys(GENOMES, 0)
    for pass_index in range(passes):
        for crop in stream._crops(random.Random(pass_index)):
            (owner,) = [name for name, seq in sequences.items() if crop in seq]
            bp[owner] += len(crop)
    total = sum(bp.values())
    return {name: n / total for name, n in bp.items()}


def test_length_sampling_draws_every_training_base_once_per_pass(sequences):
    shares = bp_shares("length", sequences)
    expected = {"ecoli": 98000 / 161768, "lambda": 47531 / 161768, "mito": 16237 / 161768}
    for name in GENOMES:  # only the untiled ends of each record (< one crop) are missing
        assert shares[name] == pytest.approx(expected[name], abs=0.01), (name, shares)


def test_genome_sampling_gives_every_file_the_same_share(sequences):
    shares = bp_shares("genome", sequences)
    for name in GENOMES:
        assert shares[name] == pytest.approx(1 / 3, abs=0.04), (name, shares)


def test_alpha_sampling_lies_between_length_and_genome(sequences):
    shares = bp_shares("0.5", sequences)
    roots = {"ecoli": 98000 ** 0.5, "lambda": 47531 ** 0.5, "mito": 16237 ** 0.5}
    for name in GENOMES:
        assert shares[name] == pytest.approx(roots[name] / sum(roots.values()), abs=0.04), (name, shares)


def test_sampling_values_outside_the_documented_set_are_refused():
    assert (sampling_alpha("length"), sampling_alpha("genome"), sampling_alpha("0.3")) == (1.0, 0.0, 0.3)
    for bad in ("uniform", "1.5", "-0.1"):
        with pytest.raises(ValueError, match=r"expected one of \['genome', 'length'\] or a number in \[0, 1\]"):
            sampling_alpha(bad)


def test_heldout_windows_follow_max_n_fraction(sequences, tmp_path):
    # 2,000 bp of real lambda sequence; the held-out second half has 300 N (30% of its one 1 kbp window).
    seq = sequences["lambda"][:2000]
    seq = seq[:1200] + "N" * 300 + seq[1500:]
    path = tmp_path / "lambda_with_n.fa"
    path.write_text(">lambda_2kbp\n" + seq + "\n")
    spans = scan_records([str(path)], 0.5, 200)
    tokenizer = load_tokenizer(str(REPO_ROOT))
    assert len(heldout_examples(spans, tokenizer, 1000, 10, max_n_fraction=0.5)) == 1
    with pytest.raises(ValueError, match="the held-out regions hold no usable window"):
        heldout_examples(spans, tokenizer, 1000, 10, max_n_fraction=0.1)
