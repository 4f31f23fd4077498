"""Messy input does no silent harm (issue 19): every case here once gave a wrong result with exit 0,
a hang, a lost file or a misleading message. Each test feeds the bundled data (data/genomes,
data/gue_sample, the converter fixtures), made messy on purpose, and asserts the message (file,
line, what was expected) and that no output file or folder is left behind."""

import codecs
import gzip
import hashlib
import json
import os
import shutil

import pytest
import torch

from helpers import FIXTURES, REPO_ROOT, Parity
from dnabert2 import cli
from dnabert2 import convert_original_checkpoint as converter
from dnabert2 import embed, finetune_gue, pretrain, train_tokenizer
from dnabert2.genome_io import GenomeFormatError, iter_records, read_csv
from dnabert2.gue import GUEDataError, read_split

LAMBDA = REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz"
PROM = REPO_ROOT / "data" / "gue_sample" / "prom" / "prom_core_all"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def lambda_lines() -> list[str]:
    return gzip.open(LAMBDA, "rt").read().splitlines()


def write(path, lines, newline="\n", prefix=b"") -> str:
    path.write_bytes(prefix + newline.join(lines).encode("utf-8") + newline.encode())
    return str(path)


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory):
    """A copy of the shipped checkpoint (4 layers) whose files a test may change."""
    def make():
        folder = tmp_path_factory.mktemp("model")
        for name in MODEL_FILES:
            shutil.copy(REPO_ROOT / name, folder / name)
        return folder
    return make


def set_config(folder, **fields):
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))


def leftovers(folder, keep=()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- hangs ---------------------------------------------------------------------------------------

def test_pretrain_stops_with_counts_when_a_pass_gives_no_batch(tmp_path):
    # Phage lambda (48.5 kbp) gives fewer 200-1000 bp crops per pass than one batch of 128.
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"one pass over the training data gives no batch: (\d+) crops kept, 0 skipped .*batch size 128") as e:
        pretrain.main(["--model_config", "dnabert2-tiny", "--train_files", str(LAMBDA), "--output_dir", str(out),
                       "--max_steps", "2", "--per_device_train_batch_size", "128", "--report_to", "none",
                       "--disable_tqdm", "true", "--save_strategy", "no"])
    kept = int(str(e.value).split(": ")[1].split(" crops")[0])
    assert 0 < kept < 128
    assert not out.exists(), "a failed run leaves no empty run folder"


def test_pretrain_half_n_genome_reports_the_skipped_crops(tmp_path):
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.pretraining_data import EmptyPassError, GenomeCropStream, scan_records

    lines = lambda_lines()
    half_n = [lines[0]] + ["".join("N" if i % 2 else c for i, c in enumerate(line)) for line in lines[1:]]
    path = write(tmp_path / "half_n.fa", half_n)
    stream = GenomeCropStream(scan_records([path], 0.0, 100), load_tokenizer(str(REPO_ROOT)), 100, 400, group_size=8)
    with pytest.raises(EmptyPassError, match=r"0 crops kept, (\d+) skipped \(more than max_n_fraction=0.1 N\), batch size 8"):
        next(iter(stream))


# --- wrong results with exit 0 -------------------------------------------------------------------

@pytest.mark.parametrize("layers,problem", [(2, r"22 unexpected keys \(bert\.encoder\.layer\.2\."), (6, r"22 missing keys \(encoder\.layer\.4\.")])
def test_embed_refuses_a_config_whose_layer_count_differs_from_the_weights(model_copy, tmp_path, layers, problem):
    model = model_copy()
    set_config(model, num_hidden_layers=layers)
    out = tmp_path / "x.npy"
    with pytest.raises(cli.ModelLoadingError, match=rf"encoder weights do not match config.json \(num_hidden_layers={layers}\): {problem}"):
        embed.main([str(LAMBDA), "--output", str(out), "--model", str(model)])
    assert leftovers(tmp_path) == [], "no output and no .partial work folder"


def _interrupted_embed(monkeypatch, args):
    """Run embed.py until it has finished one chunk, then kill it (KeyboardInterrupt)."""
    from dnabert2.modeling_bert import BertModel

    real, calls = BertModel.embed, []

    def dying(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(BertModel, "embed", dying)
    with pytest.raises(KeyboardInterrupt):
        embed.main(args)
    monkeypatch.setattr(BertModel, "embed", real)


def test_embed_resume_refuses_a_changed_model_or_option(model_copy, tmp_path, monkeypatch):
    model = model_copy()
    fasta = write(tmp_path / "three.fa", [x for i in range(3) for x in (f">r{i}", lambda_lines()[1 + i])])
    out = tmp_path / "x.npy"
    args = [fasta, "--output", str(out), "--model", str(model), "--chunk_records", "1"]
    _interrupted_embed(monkeypatch, args)
    weights = model / "model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(weights)
    state["bert.encoder.layer.0.mlp.wo.bias"] = state["bert.encoder.layer.0.mlp.wo.bias"] + 1  # retrained in place
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match=r"x\.npy\.partial holds a partial run with different model_files"):
        embed.main(args)
    with pytest.raises(RuntimeError, match=r"partial run with different max_tokens, model_files"):
        embed.main([*args, "--max_tokens", "64"])
    assert not out.exists()


def test_embed_checks_csv_sequences_like_fasta_lines(model_copy, tmp_path):
    rows = ["id,sequence", f"a,{lambda_lines()[1]}", "", "b,ACGT XXXX hello!!"]  # line 3 is blank
    path = write(tmp_path / "t.csv", rows)
    with pytest.raises(GenomeFormatError, match=r"t\.csv:4: unexpected character ' '; expected DNA letters"):
        embed.main([path, "--output", str(tmp_path / "x.npy")])
    assert leftovers(tmp_path, keep={"t.csv"}) == []


@pytest.mark.parametrize("name", ["plain.fa", "plain.fasta.gz"])
def test_embed_refuses_a_fasta_named_file_without_a_header(tmp_path, name):
    sequences = lambda_lines()[1:6]  # sequence lines without their '>' header
    path = tmp_path / name
    data = ("\n".join(sequences) + "\n").encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(GenomeFormatError, match=rf"{name}:1: expected a FASTA header line starting with '>'"):
        embed.main([str(path), "--output", str(tmp_path / "x.npy")])
    assert leftovers(tmp_path, keep={name}) == []


def test_finetune_reads_three_columns_as_pairs_only_under_pair_names(tmp_path):
    data = tmp_path / "task"
    data.mkdir()
    for split in ("train", "dev", "test"):
        rows = (PROM / f"{split}.csv").read_text().splitlines()
        (data / f"{split}.csv").write_text("id,sequence,label\n" + "".join(f"{i},{r}\n" for i, r in enumerate(rows[1:])))
    out = tmp_path / "out"
    with pytest.raises(GUEDataError, match=r"train\.csv:1: header 'id,sequence,label'; expected 'sequence,label', "
                                           r"or for sequence pairs 'sequence_a,sequence_b,label' or 'sequence1,sequence2,label'"):
        finetune_gue.main(["--data_path", str(data), "--output_dir", str(out), "--max_steps", "1", "--eval_strategy", "no",
                           "--save_strategy", "no", "--load_best_model_at_end", "false"])  # fast even if it did train
    assert not out.exists()


def test_finetune_pair_columns_are_read_as_two_sequences(tmp_path):
    rows = (PROM / "train.csv").read_text().splitlines()[1:4]
    path = tmp_path / "train.csv"
    path.write_text("sequence1,sequence2,label\n" + "".join(f"{r.split(',')[0][:30]},{r}\n" for r in rows))
    split = read_split(str(path))
    assert split.sequences[1] == [r.split(",")[0] for r in rows] and split.labels == [int(r[-1]) for r in rows]


@pytest.mark.parametrize(
    "script,argv,message",
    [
        (pretrain, ["--train_files", str(LAMBDA), "--max_steps", "2", "--mlm_probability", "0"], r"--mlm_probability 0\.0 is out of range: expected a value in \(0, 1\]"),
        (pretrain, ["--train_files", str(LAMBDA), "--max_steps", "2", "--max_n_fraction", "1.5"], r"--max_n_fraction 1\.5 .* in \[0, 1\]"),
        (pretrain, ["--train_files", str(LAMBDA), "--max_steps", "2", "--learning_rate", "0"], r"--learning_rate 0\.0 .* > 0"),
        (pretrain, ["--train_files", str(LAMBDA), "--max_steps", "0"], r"--max_steps 0 .* other than 0"),
        (finetune_gue, ["--model_max_length", "2"], r"--model_max_length 2 is out of range: expected a value >= 3"),
        (finetune_gue, ["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size 0 .* >= 1"),
        (finetune_gue, ["--seeds", "1", "-2"], r"--seeds -2 .* >= 0"),
        (embed, [str(LAMBDA), "--max_tokens", "2"], r"--max_tokens 2 .* >= 3"),
        (train_tokenizer, [str(LAMBDA), "--sample_fraction", "0"], r"--sample_fraction 0\.0 .* in \(0, 1\]"),
    ],
    ids=["mlm-0", "n-fraction", "lr-0", "steps-0", "finetune-max-length", "batch-0", "seed", "embed-max-tokens", "sample-0"],
)
def test_numeric_flags_are_range_checked_before_anything_is_read(tmp_path, script, argv, message):
    out = tmp_path / "out"
    out_flag = {pretrain: "--output_dir", finetune_gue: "--output_dir", embed: "--output", train_tokenizer: "--output"}[script]
    target = str(out) + (".npy" if script is embed else "")
    with pytest.raises(cli.UsageError, match=message):
        script.main([*argv, out_flag, target])
    assert leftovers(tmp_path) == []


# --- the converter -------------------------------------------------------------------------------

def original(tmp_path, **config_fields):
    folder = tmp_path / "original"
    folder.mkdir()
    parity = Parity("cfg_b")
    torch.save(parity.state_dict("mlm"), folder / "pytorch_model.bin")
    config = json.loads((parity.dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **config_fields}))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "original_tokenizer" / name, folder / name)
    return folder


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_converter_refuses_a_changed_head_count_at_the_published_shapes():
    published = json.loads((REPO_ROOT / "tests" / "fixtures" / "parity" / "cfg_b" / "config.json").read_text())
    published.update(hidden_size=768, num_hidden_layers=12, intermediate_size=3072, num_attention_heads=12)
    converter.check_config(published, "config.json")  # the published 117M config passes
    with pytest.raises(converter.CheckpointMismatchError, match=r"config\.json: num_attention_heads=6, but DNABERT-2-117M .* has 12"):
        converter.check_config({**published, "num_attention_heads": 6}, "config.json")


def test_converter_refuses_a_changed_activation_before_writing(tmp_path):
    source = original(tmp_path, hidden_act="relu")
    with pytest.raises(converter.CheckpointMismatchError, match=r"config\.json: hidden_act='relu', but every published DNABERT-2 checkpoint uses 'gelu'"):
        converter.convert(str(source), str(tmp_path / "out"))
    assert leftovers(tmp_path) == ["original"]


def test_converter_src_src_never_touches_the_source(tmp_path):
    source = original(tmp_path)
    before = digest(source)
    for overwrite in (False, True):
        with pytest.raises(cli.UsageError, match="is \\(or holds\\) the source checkpoint"):
            converter.convert(str(source), str(source), overwrite=overwrite)
    assert digest(source) == before


def test_converter_validates_the_tokenizer_before_writing_anything(tmp_path):
    source = original(tmp_path)
    (source / "tokenizer.json").write_text('{"version": "1.0", "model": ')  # cut short
    with pytest.raises(converter.CheckpointMismatchError, match=r"original/tokenizer\.json: not a tokenizers file"):
        converter.convert(str(source), str(tmp_path / "out"))
    assert leftovers(tmp_path) == ["original"]


def test_converter_replaces_an_existing_folder_only_with_overwrite(tmp_path):
    source = original(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(cli.UsageError, match=r"out exists; pass --overwrite to replace it"):
        converter.convert(str(source), str(out))
    assert leftovers(out) == ["mine.txt"]
    converter.main([str(source), str(out), "--overwrite"])
    assert "mine.txt" not in leftovers(out) and "model.safetensors" in leftovers(out)
    assert leftovers(tmp_path) == ["original", "out"], "no temporary or old folder is left"


# --- lost or clobbered files ---------------------------------------------------------------------

def test_train_tokenizer_needs_an_explicit_output(tmp_path, capsys):
    shipped = (REPO_ROOT / "tokenizer.json").read_bytes()
    with pytest.raises(SystemExit) as e:
        train_tokenizer.main([str(LAMBDA), "--vocab_size", "64"])
    assert e.value.code == 2 and "the following arguments are required: --output" in capsys.readouterr().err
    assert (REPO_ROOT / "tokenizer.json").read_bytes() == shipped


def test_train_tokenizer_replaces_tokenizer_files_only_with_overwrite(tmp_path):
    (tmp_path / "tokenizer.json").write_text("mine")
    argv = ["--kmer", "3", "--output", str(tmp_path)]
    with pytest.raises(cli.UsageError, match=r"already holds tokenizer\.json; pass --overwrite"):
        train_tokenizer.main(argv)
    assert (tmp_path / "tokenizer.json").read_text() == "mine"
    train_tokenizer.main([*argv, "--overwrite"])
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "WordLevel"
    assert leftovers(tmp_path) == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"], "no temporary folder left"


def test_embed_refuses_an_existing_output_file(tmp_path):
    out = tmp_path / "x.npy"
    out.write_bytes(b"mine")
    with pytest.raises(cli.UsageError, match=r"x\.npy exists; pass --overwrite to replace it"):
        embed.main([str(LAMBDA), "--output", str(out)])
    assert out.read_bytes() == b"mine" and leftovers(tmp_path) == ["x.npy"]


@pytest.mark.parametrize("script,argv", [
    (pretrain, ["--train_files", str(LAMBDA), "--max_steps", "2"]),
    (finetune_gue, []),
])
def test_training_scripts_refuse_a_non_empty_run_folder(tmp_path, script, argv):
    (tmp_path / "checkpoint-6").mkdir()
    with pytest.raises(cli.UsageError, match=r"already holds checkpoint-6; pass --overwrite"):
        script.main([*argv, "--output_dir", str(tmp_path)])
    assert leftovers(tmp_path) == ["checkpoint-6"]


# --- rough edges -----------------------------------------------------------------------------------

def test_truncated_gzip_is_a_format_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(LAMBDA.read_bytes()[: LAMBDA.stat().st_size // 2])
    with pytest.raises(GenomeFormatError, match=r"cut\.fa\.gz: truncated or corrupt gzip/bgzip data after line \d+"):
        list(iter_records([str(path)]))
    with pytest.raises(GenomeFormatError, match=r"cut\.fa\.gz: truncated"):
        train_tokenizer.main([str(path), "--output", str(tmp_path / "tok")])
    assert leftovers(tmp_path) == ["cut.fa.gz"]


def test_a_folder_or_a_missing_path_is_not_found(tmp_path):
    genomes = str(REPO_ROOT / "data" / "genomes")
    with pytest.raises(FileNotFoundError, match=r"data/genomes: input not found: this is a folder, expected a file"):
        embed.main([genomes, "--output", str(tmp_path / "x.npy")])
    with pytest.raises(FileNotFoundError, match=r"data/genomes: not found: this is a folder"):
        train_tokenizer.main([genomes, "--output", str(tmp_path / "tok")])
    with pytest.raises(FileNotFoundError, match=r"no-such-model: model not found: no such folder, and not a Hub id"):
        embed.main([str(LAMBDA), "--output", str(tmp_path / "x.npy"), "--model", str(tmp_path / "no-such-model")])
    with pytest.raises(FileNotFoundError, match=r"model not found"):
        converter.convert(str(tmp_path / "no-such-model"), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match=r"no-such-tokenizer: tokenizer not found: no such folder, and not a Hub id"):
        pretrain.main(["--train_files", str(LAMBDA), "--max_steps", "2", "--tokenizer", str(tmp_path / "no-such-tokenizer"),
                       "--output_dir", str(tmp_path / "run")])
    with pytest.raises(FileNotFoundError, match=r"data/genomes: model not found: the folder has no config.json"):
        finetune_gue.main(["--model_name_or_path", genomes, "--output_dir", str(tmp_path / "run")])
    assert leftovers(tmp_path) == []


def test_a_byte_order_mark_is_accepted_in_fasta_and_csv(tmp_path):
    fasta = write(tmp_path / "bom.fa", lambda_lines(), prefix=codecs.BOM_UTF8)
    (record, seq), = iter_records([fasta])
    assert record.name.startswith("gi|9626243|") and len(seq) == 48502
    csv_path = tmp_path / "train.csv"
    csv_path.write_bytes(codecs.BOM_UTF8 + (PROM / "train.csv").read_bytes())
    assert read_split(str(csv_path)).labels == read_split(str(PROM / "train.csv")).labels
    rows = (PROM / "train.csv").read_text().splitlines()[1:3]
    csv_path.write_bytes(codecs.BOM_UTF8 + ("sequence1,sequence2,label\n" + "".join(f"ACGT,{r}\n" for r in rows)).encode())
    assert read_split(str(csv_path)).sequences[1] == [r.split(",")[0] for r in rows]  # the BOM is not part of 'sequence1'
    rows = ["sequence"] + lambda_lines()[1:3]
    path = write(tmp_path / "s.csv", rows, prefix=codecs.BOM_UTF8)
    assert [s for _, s in read_csv(path)] == rows[1:]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_utf8_headers_are_accepted_and_non_ascii_sequence_is_refused_at_its_line(tmp_path, newline):
    lines = lambda_lines()
    lines[0] = ">phage λ – Enterobacteria"
    good = write(tmp_path / "good.fa", lines, newline)
    (record, seq), = iter_records([good])
    assert record.name == "phage λ – Enterobacteria" and len(seq) == 48502
    lines[599] = lines[599][:10] + "é" + lines[599][11:]  # line 600 of the file
    bad = write(tmp_path / "bad.fa", lines, newline)
    with pytest.raises(GenomeFormatError, match=r"bad\.fa:600: unexpected character 'é'"):
        list(iter_records([bad]))


def test_gue_csv_line_numbers_count_blank_lines(tmp_path):
    rows = (PROM / "train.csv").read_text().splitlines()
    rows[5] = rows[5].rsplit(",", 1)[0] + ",yes"
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows[:3] + [""] + rows[3:]) + "\n")  # a blank line 4: the bad row is on line 7
    with pytest.raises(GUEDataError, match=r"train\.csv:7: label 'yes' is not an integer"):
        read_split(str(path))
