"""The shipped tokenizer, train_tokenizer.py, and compatibility with the original tokenizer.json."""

import csv
import gzip
import json
import os
import random
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from helpers import FIXTURES, REPO_ROOT, assert_windows_stream_in_bounded_memory
from dnabert2 import train_tokenizer
from dnabert2.dna_tokenizer import SPECIAL_TOKENS, kmer_tokenizer, overlapping_kmers, train_bpe
from dnabert2.genome_io import GenomeFormatError, iter_records, iter_windows

LAMBDA = str(REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz")
MITO = str(REPO_ROOT / "data" / "genomes" / "human_mito.fa.gz")


@pytest.fixture(scope="module")
def shipped():
    return AutoTokenizer.from_pretrained(REPO_ROOT)


@pytest.fixture(scope="module")
def lambda_genome():
    _, seq = next(iter_records([LAMBDA]))
    return seq


def ids(tokenizer, text):
    return tokenizer(text)["input_ids"]


# --- training ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer.main([LAMBDA, MITO, "--vocab-size", "300", "--output", str(out), "--word-length", "1000"])
    return out


def test_training_gives_the_exact_vocab_size_and_original_special_ids(trained):
    vocab = json.loads((trained / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(vocab) == 300
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert {"A", "C", "G", "T", "N"} <= vocab.keys()
    assert len(max(vocab, key=len)) > 3, "merges were learned"


def test_training_writes_files_that_transformers_loads(trained):
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(os.listdir(trained))
    config = json.loads((trained / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    tok = AutoTokenizer.from_pretrained(trained)
    enc = tok("ACGTTGCA")
    assert enc["input_ids"][0] == 1 and enc["input_ids"][-1] == 2


def test_training_is_deterministic(trained, tmp_path):
    train_tokenizer.main([LAMBDA, MITO, "--vocab-size", "300", "--output", str(tmp_path), "--word-length", "1000"])
    assert (tmp_path / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()


def test_training_prints_a_summary_with_the_held_out_compression(tmp_path, capsys):
    train_tokenizer.main([MITO, "--vocab-size", "64", "--output", str(tmp_path), "--holdout-every", "4", "--word-length", "500"])
    out = capsys.readouterr().out
    # 16,569 bp in 34 words of 500 bp (the last 69 bp); every 4th word (8 of them) is held out.
    assert "16,569 bp read, 12,569 bp trained on, 4,000 bp held out" in out
    assert "vocabulary: 64 tokens" in out and "time:" in out
    (_, mito), = iter_records([MITO])
    held_out = [mito[i : i + 500] for i in range(1500, 16500, 2000)]
    tok = AutoTokenizer.from_pretrained(tmp_path)
    tokens = sum(len(tok(w, add_special_tokens=False)["input_ids"]) for w in held_out)
    assert f"held-out bp per token: {4000 / tokens:.3f}" in out


def test_subsampling_reads_less(tmp_path, capsys):
    train_tokenizer.main([LAMBDA, "--vocab-size", "64", "--output", str(tmp_path), "--max-bp", "10000", "--word-length", "1000"])
    assert "10,000 bp read" in capsys.readouterr().out


def test_training_consumes_a_generator_of_chunks():
    rng = random.Random(0)
    consumed = []

    def chunks():
        for i in range(2000):
            consumed.append(i)
            yield "".join(rng.choice("ACGT") for _ in range(50))

    tokenizer = train_bpe(chunks(), vocab_size=200, show_progress=False)
    assert tokenizer.get_vocab_size() == 200 and len(consumed) == 2000


def test_training_never_merges_n_even_when_words_contain_it():
    rng = random.Random(1)
    words = ["".join(rng.choice("ACGT") for _ in range(60)) + "NNNN" + "ACGTACGT" * 4 for _ in range(300)]
    tokenizer = train_bpe(iter(words), vocab_size=120, show_progress=False)
    assert not [t for t in tokenizer.get_vocab() if "N" in t and t not in ("N", *SPECIAL_TOKENS)]
    assert tokenizer.pre_tokenizer is None  # the training-time N split is not paid for at encode time


def test_a_corpus_too_small_for_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match="supports only"):
        train_bpe(iter(["GATTACA"] * 100), vocab_size=4096, show_progress=False)


def test_reading_a_genome_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "big.fa.gz"
    with gzip.open(path, "wt") as f:  # 6 Mbp in one record with 60-bp lines
        f.write(">big\n")
        for _ in range(100_000):
            f.write("ACGTTGCAAC" * 6 + "\n")
    assert_windows_stream_in_bounded_memory(path, 6_000_000)


def test_fasta_line_breaks_do_not_cut_words(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(">r\nACGT\nTTGG\nCC\n>s\nAAAA\n")
    assert [(r.name, s, w) for r, s, w in iter_windows([str(path)], 5)] == [
        ("r", 0, "ACGTT"), ("r", 5, "TGGCC"), ("s", 0, "AAAA")
    ]


# --- bad input --------------------------------------------------------------------------------

def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("labels.csv", b"sequence,label\nACGT,1\n", r"labels\.csv:1: unexpected character 'e'"),
        ("blob.bin", bytes(range(256)) * 4, "binary data"),
        ("empty.fa", b"", "empty file"),
        ("headers.fa", b">a\n>b\n", "no sequence lines"),
        ("late.fa", b">a\nACGT\nACGX\n", r"late\.fa:3: unexpected character 'X'"),
    ],
)
def test_bad_corpus_is_refused_with_file_and_line(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    with pytest.raises(GenomeFormatError, match=message):
        train_tokenizer.main([path, "--vocab-size", "64", "--output", str(tmp_path / "out")])


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        train_tokenizer.main([str(tmp_path / "nope.fa"), "--output", str(tmp_path)])


def test_all_n_corpus_is_refused(tmp_path):
    path = _write(tmp_path, "n.fa", b">n\n" + b"N" * 500 + b"\n")
    with pytest.raises(GenomeFormatError, match="no A/C/G/T sequence"):
        train_tokenizer.main([path, "--vocab-size", "64", "--output", str(tmp_path / "out")])


def test_vocab_size_below_alphabet_plus_specials_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=8 is below"):
        train_tokenizer.main([MITO, "--vocab-size", "8", "--output", str(tmp_path)])


# --- behaviour of the shipped tokenizer ---------------------------------------------------------

def test_shipped_tokenizer_has_4096_tokens_and_original_special_ids(shipped):
    assert len(shipped) == 4096
    assert [shipped.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (shipped.unk_token_id, shipped.cls_token_id, shipped.sep_token_id, shipped.pad_token_id, shipped.mask_token_id) == (0, 1, 2, 3, 4)


def test_lowercase_and_soft_masked_read_as_uppercase(shipped):
    seq = "GATTACAGATTACACCGGTTAACGTAGCTAGCTAGGCTTAAC"
    soft_masked = seq[:10] + seq[10:30].lower() + seq[30:]
    assert ids(shipped, seq.lower()) == ids(shipped, seq) == ids(shipped, soft_masked)


def test_rna_u_reads_as_t(shipped):
    assert ids(shipped, "GAUUACAGAUUACA") == ids(shipped, "GATTACAGATTACA")


def test_whitespace_inside_a_sequence_is_ignored(shipped):
    assert ids(shipped, "GATTA CAG\nATT\tACA") == ids(shipped, "GATTACAGATTACA")


def test_ambiguity_codes_read_as_n_and_n_is_not_unknown(shipped):
    n = shipped.convert_tokens_to_ids("N")
    assert n != shipped.unk_token_id
    assert ids(shipped, "ACGTRYACGT") == ids(shipped, "ACGTNNACGT")
    assert ids(shipped, "NNNN") == [1, n, n, n, n, 2]


def test_n_runs_cut_real_sequence_into_independently_tokenized_pieces(shipped, lambda_genome):
    left, right = lambda_genome[1000:1700], lambda_genome[5000:5900]
    n = shipped.convert_tokens_to_ids("N")
    body = lambda text: ids(shipped, text)[1:-1]
    assert body(left + "NNN" + right) == body(left) + [n] * 3 + body(right)


def test_only_ascii_whitespace_is_removed_other_spaces_are_unknown(shipped):
    assert ids(shipped, "GATTA\r\n\x0bCA\x0c") == ids(shipped, "GATTACA")
    assert shipped.unk_token_id in ids(shipped, "GATTA\u00a0CA")


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_and_whitespace_inputs_give_cls_sep(shipped, text):
    assert ids(shipped, text) == [1, 2]


def test_foreign_characters_become_unk(shipped):
    assert shipped.unk_token_id in ids(shipped, "ACGT7ACGT")


def test_mask_token_is_recognised_inside_dna(shipped):
    assert ids(shipped, "ACGTACGT[MASK]ACGT").count(shipped.mask_token_id) == 1


def test_batches_pad_and_truncate(shipped):
    enc = shipped(["ACGTACGTTTGACCA" * 20, "ACG"], padding=True, truncation=True, max_length=12, return_tensors="pt")
    assert enc["input_ids"].shape == (2, 12)
    assert enc["attention_mask"][1].tolist() == [1] * int(enc["attention_mask"][1].sum()) + [0] * (12 - int(enc["attention_mask"][1].sum()))
    assert enc["input_ids"][1, -1] == shipped.pad_token_id and enc["input_ids"][0, -1] == shipped.sep_token_id


def test_pair_template_marks_the_second_sequence(shipped):
    enc = shipped("ACGTAC", "GGTTAA")
    assert enc["input_ids"].count(2) == 2 and enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0


def test_shipped_tokenizer_compresses_a_real_genome_like_the_original(shipped, lambda_genome):
    bp_per_token = len(lambda_genome) / (len(ids(shipped, lambda_genome)) - 2)
    assert 4.0 < bp_per_token < 6.0


def test_clean_uppercase_input_gives_the_same_ids_without_the_normalizer(shipped):
    # The README's speed tip: for GUE-style input the normalizer changes nothing.
    with open(REPO_ROOT / "data" / "gue_sample" / "prom" / "prom_core_all" / "test.csv", newline="") as f:
        sequences = [row["sequence"] for row in csv.DictReader(f)]
    bare = AutoTokenizer.from_pretrained(REPO_ROOT)
    bare.backend_tokenizer.normalizer = None
    assert bare(sequences)["input_ids"] == shipped(sequences)["input_ids"]


# --- k-mer baselines --------------------------------------------------------------------------

def test_non_overlapping_kmers(tmp_path):
    train_tokenizer.main(["--kmer", "3", "--output", str(tmp_path)])
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.convert_ids_to_tokens(ids(tok, "acgTTGCA")) == ["[CLS]", "ACG", "TTG", "CA", "[SEP]"]
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]


def test_overlapping_kmers():
    tok = kmer_tokenizer(3, overlap=True)
    assert tok.get_vocab_size() == 5 + 4**3
    assert tok.encode(overlapping_kmers("ACGTA", 3)).tokens == ["[CLS]", "ACG", "CGT", "GTA", "[SEP]"]


# --- the original tokenizer.json through the same loading path -----------------------------------

def test_original_tokenizer_reproduces_its_reference_ids():
    cases = json.loads((FIXTURES / "tokenizer_cases.json").read_text())
    tok = AutoTokenizer.from_pretrained(FIXTURES / "original_tokenizer")
    for case in cases["batch"] + cases["extra_cases"]:
        assert tok(case["dna"])["input_ids"] == case["input_ids"], case["dna"][:40]


# --- the benchmark script (its numbers are in BENCHMARKS.md; here only that it runs) -------------

def test_smoke_benchmark_script_compares_with_the_original_on_bundled_data():
    cmd = [sys.executable, str(REPO_ROOT / "bench" / "tokenizer.py"), "--repeats", "1", "--genome-bp", "20000",
           "--original", str(FIXTURES / "original_tokenizer" / "tokenizer.json"), "--stage-costs"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| GUE") or line.startswith("| genome")]
    assert len(rows) == 3  # the bundled prom and splice samples, and the lambda genome
    for row in rows:
        bp_ratio = float(row.strip("| ").split(" | ")[-2])
        assert 0.8 < bp_ratio < 1.25
    assert "| shipped without normalizer |" in out and "| original without pre-tokenizer |" in out
    assert "| shipped with the one-pass character map |" in out  # built, and checked against the normalizer


def test_long_input_gets_no_false_length_warning_and_truncates_only_when_asked(shipped, caplog):
    # ALiBi has no position limit, so the shipped tokenizer sets no model_max_length: transformers'
    # "will result in indexing errors" warning would be false. Truncation needs an explicit max_length.
    import logging

    tokenizer = shipped
    ecoli = "".join(s for _, s in iter_records([str(REPO_ROOT / "data" / "genomes" / "ecoli_k12_W3110_first100kbp.fa.gz")]))
    with caplog.at_level(logging.WARNING):
        full = tokenizer(ecoli, truncation=False)["input_ids"]
    assert len(full) > 19_000 and "indexing errors" not in caplog.text
    assert len(tokenizer(ecoli, truncation=True, max_length=512)["input_ids"]) == 512
    assert "model_max_length" not in json.loads((REPO_ROOT / "tokenizer_config.json").read_text())
