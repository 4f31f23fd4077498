"""Converting the original checkpoint, loading through a Hub cache offline, pipelines, embeddings, embed.py."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import FIXTURES, REPO_ROOT, Parity
from dnabert2 import convert_original_checkpoint as converter
from dnabert2 import embed as embed_cli
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.embedding import embed
from dnabert2.genome_io import GenomeFormatError, reverse_complement

MITO = str(REPO_ROOT / "data" / "genomes" / "human_mito.fa.gz")


def original_folder(path, parity, state=None):
    """An original-format checkpoint: pytorch_model.bin in original key names (no pooler), original config and tokenizer."""
    path.mkdir(parents=True, exist_ok=True)
    torch.save(parity.state_dict("mlm") if state is None else state, path / "pytorch_model.bin")
    shutil.copy(parity.dir / "config.json", path / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "original_tokenizer" / name, path / name)
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    parity = Parity("cfg_b")
    root = tmp_path_factory.mktemp("convert")
    source = original_folder(root / "original", parity)
    record = converter.convert(str(source), str(root / "converted"))
    return root / "converted", parity, record


# --- conversion -------------------------------------------------------------------------------

def test_converted_folder_has_code_config_card_and_checksums(converted):
    folder, _, record = converted
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "dnabert2" and config["auto_map"]["AutoModelForMaskedLM"] == "modeling_bert.BertForMaskedLM"
    for name in ("modeling_bert.py", "bert_layers.py", "model.safetensors", "tokenizer.json", "README.md", "conversion.json"):
        assert (folder / name).exists(), name
    assert record["keys"] == 43 and len(record["input_weights"]["sha256"]) == 64
    assert record["output_weights"]["sha256"] == converter.sha256(str(folder / "model.safetensors"))
    assert "library_name: transformers" in (folder / "README.md").read_text()


def test_converted_model_reproduces_the_parity_outputs_offline(converted):
    folder, parity, _ = converted
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    i = parity.inputs
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()(i["input_ids"], i["attention_mask"]).last_hidden_state
        mlm = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
        out = mlm(input_ids=i["mlm_input_ids"], attention_mask=i["attention_mask"], labels=i["mlm_labels"])
    assert (hidden - parity.outputs["last_hidden_state"])[parity.real].abs().max() <= 1e-5
    assert (out.loss - parity.outputs["mlm_loss"]).abs() <= 1e-5
    assert (out.logits - parity.outputs["mlm_logits_at_labels"]).abs().max() <= 1e-5
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    cases = json.loads((FIXTURES / "tokenizer_cases.json").read_text())["batch"]
    assert tokenizer(cases[0]["dna"])["input_ids"] == cases[0]["input_ids"]


@pytest.mark.parametrize(
    "tamper,message",
    [
        (lambda s: s.pop("bert.encoder.layer.1.mlp.wo.bias"), r"missing \(1\): bert.encoder.layer.1.mlp.wo.bias"),
        (lambda s: s.__setitem__("bert.encoder.layer.9.mlp.wo.bias", torch.zeros(96)), r"unexpected \(1\)"),
        (lambda s: s.__setitem__("bert.embeddings.word_embeddings.weight", torch.zeros(4000, 96)), r"wrong shape \(1\)"),
    ],
    ids=["missing-key", "extra-key", "wrong-shape"],
)
def test_tampered_checkpoints_are_refused(tmp_path, tamper, message):
    parity = Parity("cfg_b")
    state = dict(parity.state_dict("mlm"))
    tamper(state)
    source = original_folder(tmp_path / "original", parity, state)
    with pytest.raises(converter.CheckpointMismatchError, match=message):
        converter.convert(str(source), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing is written for a refused checkpoint"


def test_a_decoder_that_differs_from_the_tied_embeddings_is_refused(tmp_path):
    parity = Parity("cfg_b")
    state = dict(parity.state_dict("mlm"))
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1e-3  # right shape, not tied
    source = original_folder(tmp_path / "original", parity, state)
    with pytest.raises(converter.CheckpointMismatchError, match="decoder.weight differs from bert.embeddings.word_embeddings.weight"):
        converter.convert(str(source), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing is written for a refused checkpoint"


def test_a_safetensors_checkpoint_converts_like_the_pickle(tmp_path):
    import hashlib

    from safetensors.torch import save_file

    parity = Parity("cfg_b")
    source = original_folder(tmp_path / "original", parity)
    (source / "pytorch_model.bin").unlink()
    save_file(parity.state_dict("mlm"), source / "model.safetensors")
    record = converter.convert(str(source), str(tmp_path / "out"))
    assert record["input_weights"] == {
        "file": "model.safetensors", "sha256": hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    }
    assert record["keys"] == 43
    from transformers import AutoModel

    i = parity.inputs
    with torch.no_grad():
        model = AutoModel.from_pretrained(tmp_path / "out", trust_remote_code=True).eval()
        hidden = model(i["input_ids"], i["attention_mask"]).last_hidden_state
    assert (hidden - parity.outputs["last_hidden_state"])[parity.real].abs().max() <= 1e-5


def test_pickles_with_code_are_never_executed(tmp_path):
    parity = Parity("cfg_b")
    source = original_folder(tmp_path / "original", parity)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Evil()}, source / "pytorch_model.bin")
    with pytest.raises(Exception):
        converter.convert(str(source), str(tmp_path / "out"))
    assert not (tmp_path / "pwned").exists()


# --- Hub cache --------------------------------------------------------------------------------

def test_loading_by_repo_id_from_the_hub_cache_offline(converted, tmp_path):
    folder, parity, _ = converted
    repo_dir = tmp_path / "hub" / "models--dnabert2-test--tiny"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo_dir / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    script = (
        "import sys, torch; from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline;"
        "m = AutoModelForMaskedLM.from_pretrained('dnabert2-test/tiny', trust_remote_code=True).eval();"
        "t = AutoTokenizer.from_pretrained('dnabert2-test/tiny', trust_remote_code=True);"
        "print(m(**t(['ACGTAGCATCGGATCT'], return_tensors='pt')).logits.shape);"
        "print(len(pipeline('fill-mask', model='dnabert2-test/tiny', trust_remote_code=True)('ACGTAG[MASK]CATCGG')))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["torch.Size([1,", "7,", "4096])", "5"]


# --- pipelines --------------------------------------------------------------------------------

def test_fill_mask_and_feature_extraction_pipelines_give_the_model_outputs(converted):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, pipeline

    folder, _, _ = converted
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    text = "ACGTAGCATCG[MASK]GATCTATCTATCG"
    predictions = pipeline("fill-mask", model=str(folder), trust_remote_code=True)(text)
    batch = tokenizer(text, return_tensors="pt")
    position = batch["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        probs = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()(**batch).logits[0, position].softmax(-1)
    top = probs.topk(5)
    assert [p["token"] for p in predictions] == top.indices.tolist()
    assert [p["token_str"] for p in predictions] == tokenizer.convert_ids_to_tokens(top.indices.tolist())
    assert np.allclose([p["score"] for p in predictions], top.values.numpy(), atol=1e-6)

    dna = "ACGTAGCATCGGATCTATCTATCG"
    features = np.asarray(pipeline("feature-extraction", model=str(folder), trust_remote_code=True)(dna))
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()(**tokenizer(dna, return_tensors="pt")).last_hidden_state
    assert features.shape == tuple(hidden.shape) and np.abs(features - hidden.numpy()).max() <= 1e-5


# --- embeddings -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder():
    parity = Parity("cfg_a")
    from dnabert2.modeling_bert import BertModel

    model = BertModel(parity.config())
    model.load_state_dict({k[5:]: v for k, v in parity.state_dict("cls").items() if k.startswith("bert.")})
    return model.eval(), load_tokenizer(str(FIXTURES / "original_tokenizer"))


SEQS = ["ACGTAGCATCGGATCTATCTATCGACACTTGG", "GGCCTTAA", "TTTTGACAGCTAGCTAGGATCGATCGGGGATCCCA" * 3]


def _manual(model, tokenizer, seq):
    enc = tokenizer(seq, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).last_hidden_state[0]  # (tokens + 2, hidden)


def test_pooling_modes_match_manual_computation(encoder):
    model, tokenizer = encoder
    for pooling, reduce in (("mean", lambda h: h[1:-1].mean(0)), ("max", lambda h: h[1:-1].max(0).values), ("cls", lambda h: h[0])):
        got = embed(model, tokenizer, SEQS, pooling=pooling)
        expected = np.stack([reduce(_manual(model, tokenizer, s)).numpy() for s in SEQS])
        assert np.allclose(got, expected, atol=1e-5), pooling


def test_padding_never_changes_an_embedding(encoder):
    model, tokenizer = encoder
    alone = np.concatenate([embed(model, tokenizer, [s]) for s in SEQS])
    batched = embed(model, tokenizer, SEQS, batch_size=3)
    assert np.abs(alone - batched).max() <= 1e-5


def test_rc_average_is_strand_symmetric(encoder):
    model, tokenizer = encoder
    forward = embed(model, tokenizer, SEQS, rc_average=True)
    reverse = embed(model, tokenizer, [reverse_complement(s) for s in SEQS], rc_average=True)
    assert np.abs(forward - reverse).max() <= 1e-5
    with pytest.raises(ValueError, match="rc_average needs a pooled"):
        embed(model, tokenizer, SEQS, pooling="none", rc_average=True)


# Reverse complements written out by hand (not computed by the code under test).
HAND_RC = {
    "ACGTAGCATCGGATCTATCTATCGACACTTGG": "CCAAGTGTCGATAGATAGATCCGATGCTACGT",
    "GGCCTTAA": "TTAAGGCC",
}


def test_rc_average_is_the_mean_of_the_strand_and_a_hand_written_reverse_complement(encoder):
    model, tokenizer = encoder
    seqs = list(HAND_RC)
    forward = embed(model, tokenizer, seqs)
    reverse = embed(model, tokenizer, list(HAND_RC.values()))
    averaged = embed(model, tokenizer, seqs, rc_average=True)
    assert np.abs(averaged - (forward + reverse) / 2).max() <= 1e-6
    assert np.abs(averaged - forward).max(axis=1).min() > 1e-3, "non-palindromic sequences: the strands differ"
    for pooling in ("max", "cls"):
        got = embed(model, tokenizer, seqs[:1], pooling=pooling, rc_average=True)
        expected = (embed(model, tokenizer, seqs[:1], pooling=pooling) + embed(model, tokenizer, [HAND_RC[seqs[0]]], pooling=pooling)) / 2
        assert np.abs(got - expected).max() <= 1e-6, pooling


def test_token_spans_cover_the_input_exactly(encoder):
    model, tokenizer = encoder
    seq = SEQS[2] * 4
    for max_tokens in (512, 24):  # one window, then many overlapping windows
        (out,) = embed(model, tokenizer, [seq], pooling="none", max_tokens=max_tokens, overlap_tokens=6)
        spans = out.spans
        assert spans[0, 0] == 0 and spans[-1, 1] == len(seq)
        assert (spans[1:, 0] == spans[:-1, 1]).all(), "spans are contiguous and do not overlap"
        assert out.vectors.shape == (len(spans), 128)


def test_long_sequences_are_windowed_and_combined(encoder):
    model, tokenizer = encoder
    seq = SEQS[2] * 4
    whole = embed(model, tokenizer, [seq], pooling="none", max_tokens=512)[0].vectors
    windowed = embed(model, tokenizer, [seq], pooling="none", max_tokens=24, overlap_tokens=6)[0].vectors
    assert windowed.shape == whole.shape
    ids = tokenizer(seq, add_special_tokens=False)["input_ids"]
    window = [tokenizer.cls_token_id, *ids[:22], tokenizer.sep_token_id]
    with torch.no_grad():
        first = model(torch.tensor([window])).last_hidden_state[0, 1:-1]
    assert np.allclose(windowed[:19], first[:19].numpy(), atol=1e-5), "the first window supplies the first tokens"
    pooled = embed(model, tokenizer, [seq], max_tokens=24, overlap_tokens=6)
    assert np.allclose(pooled[0], windowed.mean(0), atol=1e-5), "mean pooling averages every token once"


def test_embed_returns_torch_on_request_and_rejects_empty_input(encoder):
    model, tokenizer = encoder
    assert isinstance(embed(model, tokenizer, SEQS, return_tensors="pt"), torch.Tensor)
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        embed(model, tokenizer, ["ACGT", "  "])


def test_model_method_is_the_same_function(encoder):
    model, tokenizer = encoder
    assert np.array_equal(model.embed(tokenizer, SEQS), embed(model, tokenizer, SEQS))


# --- embed.py ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_model(tmp_path_factory, converted):
    return str(converted[0])


def test_cli_embeds_a_real_fasta(cli_model, tmp_path):
    fasta = tmp_path / "two.fa"
    fasta.write_text(">a first\nACGTAGCATCGGATCTATCTATCG\nACACTTGG\n>b\nGGCCTTAACCGGTTAA\n")
    embed_cli.main([str(fasta), "--output", str(tmp_path / "x.npy"), "--model", cli_model])
    vectors = np.load(tmp_path / "x.npy")
    model, tokenizer = embed_cli.load_model(cli_model, "float32")
    records = ["ACGTAGCATCGGATCTATCTATCGACACTTGG", "GGCCTTAACCGGTTAA"]  # line breaks joined
    expected = np.stack([_manual(model, tokenizer, q)[1:-1].mean(0).numpy() for q in records])
    assert vectors.shape == (2, 96) and np.abs(vectors - expected).max() <= 1e-5
    assert (tmp_path / "x.npy.ids.txt").read_text().split("\n")[:2] == ["a first", "b"]
    assert not (tmp_path / "x.npy.partial").exists()


def test_cli_resumes_after_a_kill_without_recomputing(cli_model, tmp_path, monkeypatch):
    out = tmp_path / "mito.parquet"
    args = [MITO, "--output", str(out), "--model", cli_model, "--chunk-records", "1"]
    fasta = tmp_path / "many.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGTAGCATCGGATCTATCTATCG'[i:] * 3}\n" for i in range(5)))
    args[0] = str(fasta)
    from dnabert2.modeling_bert import BertModel

    calls = []
    real_embed = BertModel.embed

    def dying_embed(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed while working on the third chunk
        return real_embed(self, *a, **k)

    monkeypatch.setattr(BertModel, "embed", dying_embed)
    with pytest.raises(KeyboardInterrupt):
        embed_cli.main(args)
    assert not out.exists(), "an interrupted run leaves no output file"
    assert len(list((tmp_path / "mito.parquet.partial").glob("chunk_*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(BertModel, "embed", lambda self, *a, **k: (calls.append(1), real_embed(self, *a, **k))[1])
    embed_cli.main(args)
    assert len(calls) == 3, "only the three unfinished chunks are computed"
    import pyarrow.parquet as pq

    resumed = pq.read_table(out)
    embed_cli.main([*args[:2], str(tmp_path / "straight.parquet"), *args[3:]])
    straight = pq.read_table(tmp_path / "straight.parquet")
    assert resumed.column("id").to_pylist() == [f"r{i}" for i in range(5)]
    assert np.allclose(np.stack(resumed.column("embedding").to_numpy(zero_copy_only=False)),
                       np.stack(straight.column("embedding").to_numpy(zero_copy_only=False)), atol=1e-6)


def test_cli_crash_during_the_final_write_leaves_no_output_and_a_rerun_completes(cli_model, tmp_path, monkeypatch):
    fasta = tmp_path / "many.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGTAGCATCGGATCTATCTATCG'[i:] * 3}\n" for i in range(5)))
    out = tmp_path / "x.npy"
    args = [str(fasta), "--output", str(out), "--model", cli_model, "--chunk-records", "2"]
    real_save = np.save

    def dying_save(file, array, *a, **k):
        file.write(b"\x93NUMPY partial bytes")  # the writer emits part of the file ...
        file.flush()
        raise OSError("disk full")  # ... then dies

    monkeypatch.setattr(np, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        embed_cli.main(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.fa", "x.npy.partial"], "no output, no temp file"
    partial = tmp_path / "x.npy.partial"
    assert sorted(p.name for p in partial.iterdir()) == [
        "chunk_000000.npz", "chunk_000001.npz", "chunk_000002.npz", "manifest.json"
    ]
    monkeypatch.setattr(np, "save", real_save)
    from dnabert2.modeling_bert import BertModel

    monkeypatch.setattr(BertModel, "embed", lambda *a, **k: pytest.fail("the rerun recomputed a finished chunk"))
    embed_cli.main(args)
    assert not partial.exists()
    monkeypatch.undo()
    model, tokenizer = embed_cli.load_model(cli_model, "float32")
    expected = embed(model, tokenizer, [f"{'ACGTAGCATCGGATCTATCTATCG'[i:] * 3}" for i in range(5)])
    assert np.abs(np.load(out) - expected).max() <= 1e-5
    assert (tmp_path / "x.npy.ids.txt").read_text().split() == [f"r{i}" for i in range(5)]


CSV_ROWS = [("p1", "ACGTAGCATCGGATCTATCTATCGACACTTGG"), ("p2", "GGCCTTAACCGGTTAAGCATCG"), ("p3", "TTGACAGCTAGCTAGGATCGATCGGGGATCCCA")]


def _cli_vectors(cli_model, tmp_path, name, rows, *extra):
    path = tmp_path / f"{name}.csv"
    path.write_text("id,sequence\n" + "".join(f"{i},{q}\n" for i, q in rows))
    out = tmp_path / f"{name}.npy"
    embed_cli.main([str(path), "--output", str(out), "--model", cli_model, *extra])
    assert (tmp_path / f"{name}.npy.ids.txt").read_text().split() == [i for i, _ in rows]
    return np.load(out)


def test_cli_embeds_a_csv_by_id_like_the_library(cli_model, tmp_path):
    got = _cli_vectors(cli_model, tmp_path, "plain", CSV_ROWS)
    model, tokenizer = embed_cli.load_model(cli_model, "float32")
    expected = np.stack([_manual(model, tokenizer, q)[1:-1].mean(0).numpy() for _, q in CSV_ROWS])
    assert got.shape == (3, 96) and np.abs(got - expected).max() <= 1e-5


def test_cli_rc_average_is_the_mean_with_hand_written_reverse_complements(cli_model, tmp_path):
    reverse = [("p1", "CCAAGTGTCGATAGATAGATCCGATGCTACGT"), ("p2", "CGATGCTTAACCGGTTAAGGCC"),
               ("p3", "TGGGATCCCCGATCGATCCTAGCTAGCTGTCAA")]
    forward = _cli_vectors(cli_model, tmp_path, "fwd", CSV_ROWS)
    backward = _cli_vectors(cli_model, tmp_path, "rev", reverse)
    averaged = _cli_vectors(cli_model, tmp_path, "avg", CSV_ROWS, "--rc-average")
    assert np.abs(averaged - (forward + backward) / 2).max() <= 1e-5
    assert np.abs(averaged - forward).max() > 1e-3


def test_cli_bfloat16_stays_close_to_float32(cli_model, tmp_path):
    full = _cli_vectors(cli_model, tmp_path, "fp32", CSV_ROWS)
    half = _cli_vectors(cli_model, tmp_path, "bf16", CSV_ROWS, "--dtype", "bfloat16")
    assert half.dtype == np.float32  # stored as float32 whatever the compute dtype
    assert not np.array_equal(half, full), "bf16 really computed in bf16"
    cosine = (half * full).sum(1) / np.linalg.norm(half, axis=1) / np.linalg.norm(full, axis=1)
    assert cosine.min() >= 0.999, cosine


def test_cli_refuses_a_partial_run_with_other_options(cli_model, tmp_path):
    fasta = tmp_path / "one.fa"
    fasta.write_text(">a\nACGTAGCATCGG\n")
    (tmp_path / "x.npy.partial").mkdir()
    (tmp_path / "x.npy.partial" / "manifest.json").write_text(json.dumps({"pooling": "cls"}))
    with pytest.raises(RuntimeError, match="partial run with different"):
        embed_cli.main([str(fasta), "--output", str(tmp_path / "x.npy"), "--model", cli_model])


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("table.tsv", "id\tseq\nx\tACGT\n", r"table\.tsv:1: unexpected character"),
        ("empty_record.fa", ">a\nACGT\n>b\n>c\nGG\n", r"empty_record\.fa:3: record 'b' has no sequence"),
        ("no_column.csv", "id,dna\nx,ACGT\n", r"no_column\.csv:1: header"),
    ],
)
def test_cli_rejects_bad_input_clearly(cli_model, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GenomeFormatError, match=message):
        embed_cli.main([str(path), "--output", str(tmp_path / "x.npy"), "--model", cli_model])


def test_root_checkpoint_works_with_auto_classes_and_pipelines():
    from transformers import AutoModel, AutoModelForMaskedLM, pipeline

    root = str(REPO_ROOT)
    assert AutoModel.from_pretrained(root, trust_remote_code=True).config.model_type == "dnabert2"
    mlm = AutoModelForMaskedLM.from_pretrained(root, trust_remote_code=True)
    assert mlm.cls.predictions.decoder.weight.data_ptr() == mlm.bert.embeddings.word_embeddings.weight.data_ptr()
    predictions = pipeline("fill-mask", model=root, trust_remote_code=True)("ACGTAGCATCGGATC[MASK]TATCTATCGACACTTGG")
    assert len(predictions) == 5 and predictions[0]["score"] > predictions[-1]["score"]
    features = np.asarray(pipeline("feature-extraction", model=root, trust_remote_code=True)("ACGTAGCATCGGATCTATCTATCG"))
    assert features.shape[-1] == 256
