"""dna_alphabet.py: one complement table and one canonical mapping, and what is built from them.

Expected strings are written out by hand; nothing is compared with the function under test.
"""

import csv
import json
import os

import pytest
from tokenizers import Tokenizer

from helpers import REPO_ROOT
from dnabert2 import dna_alphabet, genome_io
from dnabert2.dna_alphabet import canonical, reverse_complement
from dnabert2.dna_tokenizer import dna_normalizer
from dnabert2.genome_io import iter_records

LAMBDA = str(REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz")


@pytest.mark.parametrize(
    "seq,expected",
    [
        ("ACGT", "ACGT"),  # DNA palindrome
        ("AACGTTTG", "CAAACGTT"),
        ("GATTACA", "TGTAATC"),
        ("ACGU", "ACGT"),  # RNA: U pairs with A; the complement of A is T
        ("UUUG", "CAAA"),
        ("acgtn", "nacgt"),  # lowercase stays lowercase
        ("GAttaCA", "TGtaaTC"),  # soft-masked stretch keeps its case
        ("acgu", "acgt"),
        ("RYKMBVDH", "DHBVKMRY"),  # R<->Y, K<->M, B<->V, D<->H
        ("SWN", "NWS"),  # self-complementary codes
        ("rykmswbdhvn", "nbdhvwskmry"),
        ("", ""),
    ],
)
def test_reverse_complement_literals(seq, expected):
    assert reverse_complement(seq) == expected


@pytest.mark.parametrize(
    "seq,expected",
    [
        ("acgtn", "ACGTN"),
        ("ACGU", "ACGT"),
        ("acgu", "ACGT"),
        ("RYKMSWBDHV", "NNNNNNNNNN"),
        ("rykmswbdhv", "NNNNNNNNNN"),
        ("GATTACAnnRy", "GATTACANNNN"),
    ],
)
def test_canonical_literals(seq, expected):
    assert canonical(seq) == expected


def test_tables_cover_exactly_the_iupac_letters():
    expected = set("ACGTUNRYKMSWBDHV") | set("acgtunrykmswbdhv")
    assert dna_alphabet.IUPAC_LETTERS == expected
    assert set(dna_alphabet.COMPLEMENT) == expected and set(dna_alphabet.CANONICAL) == expected


def test_complement_is_an_involution_except_for_u():
    for letter, partner in dna_alphabet.COMPLEMENT.items():
        back = dna_alphabet.COMPLEMENT[partner]
        assert back == letter or letter in "Uu", (letter, partner, back)


def test_genome_io_uses_the_alphabet_module():
    # One home: genome_io re-exports the functions, it does not own a second table.
    assert genome_io.reverse_complement is dna_alphabet.reverse_complement
    assert genome_io.canonical is dna_alphabet.canonical
    assert genome_io.IUPAC_LETTERS is dna_alphabet.IUPAC_LETTERS


def test_records_are_read_canonical(tmp_path):
    path = tmp_path / "mixed.fa"
    path.write_text(">rna\nacgU\n>iupac\nRYkmSWbdhvN\n")
    assert [seq for _, seq in iter_records([str(path)])] == ["ACGT", "NNNNNNNNNNN"]


# --- the tokenizer normalizer is built from the table -------------------------------------------

SHIPPED = REPO_ROOT / "tokenizer.json"


def test_normalizer_built_from_the_table_serializes_like_the_shipped_tokenizer(tmp_path):
    tokenizer = Tokenizer.from_file(str(SHIPPED))
    tokenizer.normalizer = dna_normalizer()
    tokenizer.save(str(tmp_path / "rebuilt.json"))
    rebuilt = json.loads((tmp_path / "rebuilt.json").read_text())["normalizer"]
    assert rebuilt == json.loads(SHIPPED.read_text())["normalizer"]
    # What that JSON says, spelled out: one rule per canonical letter.
    patterns = [(r["pattern"].get("Regex") or r["pattern"]["String"], r["content"]) for r in rebuilt["normalizers"]]
    assert patterns == [
        (r"[ \t\n\r\f\v]+", ""), ("[tuU]", "T"), ("[nRYKMSWBDHVrykmswbdhv]", "N"), ("a", "A"), ("c", "C"), ("g", "G")
    ]


def _bundled_sequences() -> list[str]:
    seqs = []
    for task in ("prom/prom_core_all", "splice/reconstructed"):
        with open(REPO_ROOT / "data" / "gue_sample" / task / "test.csv", newline="") as f:
            seqs += [row["sequence"] for row in csv.DictReader(f)][:100]
    (_, genome), = iter_records([LAMBDA])
    seqs += [genome[i : i + 1000] for i in range(0, 20_000, 1000)]
    return seqs


def test_normalizer_from_the_table_gives_the_shipped_ids_on_bundled_sequences():
    shipped = Tokenizer.from_file(str(SHIPPED))
    rebuilt = Tokenizer.from_file(str(SHIPPED))
    rebuilt.normalizer = dna_normalizer()
    seqs = _bundled_sequences()
    # Lowercase, RNA and IUPAC spellings of the same sequences, and whitespace inside them.
    variants = [s.lower() for s in seqs[::3]] + [s.replace("T", "U") for s in seqs[1::3]]
    variants += [s[:10] + "RYKMSWBDHV" + s[10:20].lower() + " \t" + s[20:] for s in seqs[2::3]]
    for batch in (seqs, variants):
        expected = [e.ids for e in shipped.encode_batch(batch)]
        assert [e.ids for e in rebuilt.encode_batch(batch)] == expected
    # And the variants read exactly as their canonical spellings.
    assert [e.ids for e in shipped.encode_batch([s.lower() for s in seqs[::3]])] == [
        e.ids for e in shipped.encode_batch(seqs[::3])
    ]


# --- a saved checkpoint ships model code only -----------------------------------------------------

def test_saved_checkpoint_folder_holds_exactly_model_code_weights_config_and_tokenizer(tmp_path):
    from dnabert2.configuration_bert import BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import TRANSFORMERS_V5, BertForMaskedLM

    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    load_tokenizer(str(REPO_ROOT)).save_pretrained(tmp_path)
    expected = [
        "config.json",            # the config, with auto_map naming the remote-code classes
        "model.safetensors",      # the weights
        "configuration_bert.py",  # BertConfig (auto_map "AutoConfig")
        "modeling_bert.py",       # the model classes (auto_map "AutoModel*")
        "bert_layers.py",         # encoder blocks, imported by modeling_bert.py
        "bert_attention.py",      # ALiBi and the attention backends
        "bert_padding.py",        # PackedBatch: the packed layout and length buckets
        "flash_attn_triton.py",   # the Triton kernel behind attn_implementation="triton"
        "embedding.py",           # BertModel.embed
        "dna_alphabet.py",        # the complement table used by embed(rc_average=True)
        "tokenizer.json",         # the tokenizer (no remote code)
        "tokenizer_config.json",  # its transformers settings
    ]
    if not TRANSFORMERS_V5:
        expected.append("special_tokens_map.json")  # transformers 4.x tokenizers also write this legacy file
    assert sorted(os.listdir(tmp_path)) == sorted(expected), "no genome reader (genome_io.py) or other non-model code"
