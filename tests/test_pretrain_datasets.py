"""pretrain.py with a `datasets` source: Parquet, JSON lines, a Hub id read offline from the cache,
resume, process split, held-out share, column errors; and the cached FASTA record index.

The reference for every batch is the FASTA path on the same sequences: the bundled lambda, human
mito and E. coli (first 100 kbp) genomes written as three records of one FASTA file, and as three
rows of a Parquet / JSON-lines dataset.
"""

import hashlib
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import REPO_ROOT
from dnabert2 import pretrain
from dnabert2.genome_io import iter_records, record_index

GENOMES = [str(REPO_ROOT / "data" / "genomes" / f) for f in
           ("phage_lambda.fa.gz", "human_mito.fa.gz", "ecoli_k12_W3110_first100kbp.fa.gz")]
LENGTHS = [48502, 16569, 100000]
COMMON = [
    "--model_config", "dnabert2-tiny", "--min_bp", "100", "--max_bp", "400", "--eval_fraction", "0",
    "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--warmup_steps", "2", "--shuffle_buffer", "64",
    "--report_to", "none", "--dataloader_pin_memory", "false", "--disable_tqdm", "true", "--seed", "11",
    "--record_batches", "true", "--logging_steps", "100",
]


def batches(folder):
    return [json.loads(line) for line in open(os.path.join(folder, "batches_rank0.jsonl"))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    sequences = [seq for path in GENOMES for _, seq in iter_records([path])]
    assert [len(s) for s in sequences] == LENGTHS
    with open(folder / "three.fa", "w") as f:
        for name, seq in zip(("lambda", "mito", "ecoli"), sequences):
            f.write(f">{name}\n" + "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + "\n")
    table = pa.table({"id": ["lambda", "mito", "ecoli"], "sequence": sequences, "length": LENGTHS})
    pq.write_table(table, folder / "three.parquet")
    with open(folder / "three.jsonl", "w") as f:  # lambda in lower case: rows are made canonical like FASTA
        for name, seq in zip(("lambda", "mito", "ecoli"), [sequences[0].lower(), *sequences[1:]]):
            f.write(json.dumps({"name": name, "dna": seq}) + "\n")
    return folder


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    pretrain.main([*COMMON, "--train_files", str(corpus / "three.fa"), "--output_dir", str(out / "fasta"), "--max_steps", "4",
                   "--save_strategy", "no"])
    pretrain.main([*COMMON, "--dataset_name", str(corpus / "three.parquet"), "--sequence_column", "sequence",
                   "--output_dir", str(out / "parquet"), "--max_steps", "4", "--save_steps", "2"])
    pretrain.main([*COMMON, "--dataset_name", str(corpus / "three.jsonl"), "--sequence_column", "dna",
                   "--output_dir", str(out / "jsonl"), "--max_steps", "2", "--save_strategy", "no"])
    return out


def test_parquet_and_jsonl_give_the_fasta_batches(runs):
    fasta = batches(runs / "fasta")
    assert [b["step"] for b in fasta] == [1, 2, 3, 4] and len({b["batch"] for b in fasta}) == 4
    for name, steps in (("parquet", 4), ("jsonl", 2)):
        got = batches(runs / name)
        assert [b["batch"] for b in got] == [b["batch"] for b in fasta[:steps]], name
        assert [b["loss"] for b in got] == pytest.approx([b["loss"] for b in fasta[:steps]], abs=1e-4), name


def test_streaming_resume_gives_the_batches_of_an_uninterrupted_run(runs, corpus, tmp_path):
    resumed = tmp_path / "resumed"
    pretrain.main([*COMMON, "--dataset_name", str(corpus / "three.parquet"), "--sequence_column", "sequence",
                   "--output_dir", str(resumed), "--max_steps", "4", "--save_steps", "2",
                   "--resume_from_checkpoint", str(runs / "parquet" / "checkpoint-2")])
    straight = batches(runs / "parquet")
    got = batches(resumed)
    assert [b["step"] for b in got] == [3, 4]
    assert [b["batch"] for b in got] == [b["batch"] for b in straight if b["step"] > 2]


def test_hub_id_loads_offline_from_the_datasets_cache(runs, corpus, tmp_path, monkeypatch):
    import datasets
    from datasets.packaged_modules.parquet.parquet import Parquet

    cache = tmp_path / "hf_datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no folder "local/three" here: the name can only be a Hub id
    copy = tmp_path / "upload.parquet"
    copy.write_bytes((corpus / "three.parquet").read_bytes())
    # What an online load_dataset("local/three") leaves in the cache: <namespace>___<name>/<config>/<version>/<commit>/
    Parquet(cache_dir=str(cache), dataset_name="three", config_id="default", hash="0123456789abcdef0123456789abcdef01234567",
            data_files={"train": [str(copy)]}).download_and_prepare()
    (cache / "three").rename(cache / "local___three")
    copy.unlink()  # the Hub id must be read from the cache, not from the file
    pretrain.main([*COMMON, "--dataset_name", "local/three", "--sequence_column", "sequence",
                   "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--save_strategy", "no"])
    assert [b["batch"] for b in batches(tmp_path / "out")] == [b["batch"] for b in batches(runs / "fasta")[:2]]


def test_processes_get_disjoint_rows(corpus):
    from dnabert2.dataset_records import DatasetSource

    parts = [DatasetSource(str(corpus / "three.parquet"), "sequence", rank=r, world=2) for r in (0, 1)]
    assert all(p.sharded_by_rank for p in parts)
    lengths = [[s.length for s in p.scan(0.0, 100)] for p in parts]
    assert lengths == [[48502, 100000], [16569]]  # one file: every second row per process


def test_hash_held_out_share_is_the_sha1_rule(corpus):
    from dnabert2.dataset_records import DatasetSource

    sequences = [seq for path in GENOMES for _, seq in iter_records([path])]
    shares = [int(hashlib.sha1(s.encode()).hexdigest()[:16], 16) / 16**16 for s in sequences]  # independent of the module
    fraction = sorted(shares)[1] + 1e-9  # holds out exactly the two lowest
    spans = DatasetSource(str(corpus / "three.parquet"), "sequence").scan(fraction, 100)
    assert [s.train_end == 0 for s in spans] == [share < fraction for share in shares]
    assert sum(s.train_end == 0 for s in spans) == 2
    assert [s.length for s in spans] == LENGTHS


@pytest.mark.parametrize("column,message", [
    ("seq", r"three\.parquet split train: no column 'seq'; the columns are \['id', 'length', 'sequence'\] "
            r"\(string columns: \['id', 'sequence'\]\)"),
    ("length", r"three\.parquet split train: column 'length' holds int64, expected strings \(DNA sequences\); "
               r"string columns: \['id', 'sequence'\]"),
])
def test_bad_sequence_column_names_column_dataset_and_allowed(corpus, tmp_path, column, message):
    with pytest.raises(ValueError, match=message):
        pretrain.main([*COMMON, "--dataset_name", str(corpus / "three.parquet"), "--sequence_column", column,
                       "--output_dir", str(tmp_path / "out"), "--max_steps", "2"])


def test_non_dna_row_names_the_dataset_row_and_column(tmp_path):
    from dnabert2.dataset_records import DatasetSource
    from dnabert2.genome_io import GenomeFormatError

    pq.write_table(pa.table({"sequence": ["ACGT" * 50, "ACGTQ" * 40]}), tmp_path / "bad.parquet")
    with pytest.raises(GenomeFormatError, match=r"bad\.parquet split train, column 'sequence':1: unexpected character 'Q'"):
        DatasetSource(str(tmp_path / "bad.parquet"), "sequence").scan(0.0, 100)


def test_record_index_cache_is_used_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    import dnabert2.genome_io as genome_io

    path = tmp_path / "two.fa"
    path.write_text(">a\nACGTACGTAC\nGG\n>b desc\nTTTT\n")
    cache = tmp_path / "cache"
    assert record_index(str(path), str(cache)) == [("a", 12), ("b desc", 4)]
    assert len(os.listdir(cache)) == 1 and not [f for f in os.listdir(cache) if ".tmp" in f]
    calls = []
    real = genome_io.iter_record_chunks
    monkeypatch.setattr(genome_io, "iter_record_chunks", lambda p: calls.append(p) or real(p))
    assert record_index(str(path), str(cache)) == [("a", 12), ("b desc", 4)]
    assert calls == [], "a cached index is read without reading the file"
    # Same size, new content and mtime: the cached index must not be used.
    path.write_text(">a\nACGTACGTACA\n>b desc\nGGTTTT\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    assert path.stat().st_size == 30
    assert record_index(str(path), str(cache)) == [("a", 11), ("b desc", 6)]
    assert calls == [str(path)]


def test_dataset_row_index_is_cached_for_local_files_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    from dnabert2.dataset_records import DatasetSource

    path, cache = tmp_path / "rows.parquet", str(tmp_path / "cache")
    pq.write_table(pa.table({"sequence": ["ACGT" * 60, "GATTACA" * 40, "C" * 250]}), path)
    first = DatasetSource(str(path), "sequence", index_cache_dir=cache).scan(0.0, 100)
    assert [(s.name, s.length, s.train_end) for s in first] == [("row 0", 240, 240), ("row 1", 280, 280), ("row 2", 250, 250)]
    assert len(os.listdir(cache)) == 1

    def no_read(self):
        raise AssertionError("a cached row index must be used without reading the rows")

    monkeypatch.setattr(DatasetSource, "sequences", no_read)
    again = DatasetSource(str(path), "sequence", index_cache_dir=cache).scan(0.0, 100)
    assert [(s.name, s.length, s.train_end) for s in again] == [(s.name, s.length, s.train_end) for s in first]
    with pytest.raises(AssertionError, match="cached row index"):  # another held-out share is another index
        DatasetSource(str(path), "sequence", index_cache_dir=cache).scan(0.5, 100)
    monkeypatch.undo()
    # A rewritten file (new size and mtime) is read again: the old index is never used.
    pq.write_table(pa.table({"sequence": ["ACGT" * 70, "T" * 300]}), path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    changed = DatasetSource(str(path), "sequence", index_cache_dir=cache).scan(0.0, 100)
    assert [(s.length, s.train_end) for s in changed] == [(280, 280), (300, 300)]
