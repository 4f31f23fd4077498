"""Your own data end to end: label types in finetune_gue.py, predict.py, per-base tasks, layer choice.

All sequences are real: the bundled examples in data/own_data (windows of the bundled genomes,
labels computed from the sequence by the rules in data/own_data/build.py) or windows cut here from
data/genomes. Models are tiny and randomly initialised, so the runs take seconds.
"""

import csv
import importlib.util
import json
import random

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
from dnabert2 import finetune_gue, predict
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import GenomeFormatError, iter_records, reverse_complement
from dnabert2.gue import GUEDataError
from dnabert2.per_base import labels_to_tokens, tokens_to_bases
from dnabert2.task_types import TaskSpec, detect_task_type, read_labeled_task

OWN = REPO_ROOT / "data" / "own_data"
FAST = ["--eval_steps", "20", "--save_steps", "20", "--disable_tqdm", "true", "--logging_steps", "20",
        "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1", "--warmup_steps", "10",
        "--model_max_length", "64", "--classifier_pooling", "mean", "--per_device_eval_batch_size", "32"]


def _build_module():
    spec = importlib.util.spec_from_file_location("own_data_build", OWN / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _build_module()


def tiny(folder, **overrides):
    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.modeling_bert import BertForMaskedLM
    from dnabert2.training_callbacks import save_tokenizer

    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**{**PRESETS["dnabert2-tiny"], **overrides})).save_pretrained(folder)
    save_tokenizer(load_tokenizer(str(REPO_ROOT)), folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("tiny"), hidden_dropout_prob=0.0)


def finetune(model, data, out, *extra):
    finetune_gue.main(["--model_name_or_path", model, "--data_path", str(data), "--output_dir", str(out), *FAST, *extra])
    return json.loads((out / "test_results.json").read_text())


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def classification_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    finetune(tiny_model, OWN / "classification", out, "--num_train_epochs", "2", "--learning_rate", "3e-3")
    return out


# --- detection and bad input ------------------------------------------------------------------

@pytest.mark.parametrize("folder,kind", [("classification", "classification"), ("regression", "regression"),
                                         ("multilabel", "multilabel"), ("per_base", "token")])
def test_label_type_is_detected_from_the_train_csv(folder, kind):
    assert detect_task_type(str(OWN / folder / "train.csv")) == kind


def test_gue_files_stay_integer_classification():
    spec, splits = read_labeled_task(str(REPO_ROOT / "data" / "gue_sample" / "prom" / "prom_core_all"))
    assert spec.task_type == "classification" and spec.label_names == ["0", "1"]
    assert set(splits["train"].labels) == {0, 1}


def test_several_zero_one_columns_are_multilabel_and_numbers_are_regression(tmp_path):
    seqs = [w for _, w in zip(range(9), BUILD.windows("lambda", 60))]
    for name, header, rows in [
        ("ml", "sequence,a,b", [f"{s},{i % 2},{(i // 2) % 2}" for i, s in enumerate(seqs)]),
        ("reg", "sequence,gc,at", [f"{s},{BUILD.gc(s):.3f},{1 - BUILD.gc(s):.3f}" for s in seqs]),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        for split in ("train", "dev", "test"):
            (folder / f"{split}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
        spec, splits = read_labeled_task(str(folder))
        assert spec.label_names == header.split(",")[1:]
        assert splits["train"].labels[1] == ([1.0, 0.0] if name == "ml" else [float(f"{BUILD.gc(seqs[1]):.3f}"), float(f"{1 - BUILD.gc(seqs[1]):.3f}")])
    assert spec.task_type == "regression"


@pytest.mark.parametrize(
    "folder,split,edit,message",
    [
        ("regression", "dev", lambda lines: lines[:3] + [lines[3].split(",")[0] + ",nan"] + lines[4:],
         r"dev\.csv:4: column 'gc': target 'nan' is not a finite number"),
        ("regression", "test", lambda lines: [lines[0] + ",extra"] + [l + ",1" for l in lines[1:]],
         r"test\.csv:1: sequence/label columns \['sequence'\]/\['gc', 'extra'\] differ from train\.csv's"),
        ("classification", "test", lambda lines: lines[:2] + [lines[2].split(",")[0] + ",yeast"] + lines[3:],
         r"test\.csv:3: column 'label': label 'yeast' never appears in train \(known: ecoli, lambda, mito\)"),
        ("multilabel", "dev", lambda lines: lines[:5] + [lines[5].split(",")[0] + ",gatc;tata"] + lines[6:],
         r"dev\.csv:6: column 'labels': label name 'tata' never appears in train"),
        ("per_base", "train", lambda lines: lines[:2] + [lines[2][:-1]] + lines[3:],
         r"train\.csv:3: column 'cpg': expected one digit per base \(100\), got 99"),
    ],
    ids=["nan-target", "label-columns-differ", "unknown-class", "unknown-label-name", "per-base-length"],
)
def test_bad_labels_name_file_line_and_column(tmp_path, folder, split, edit, message):
    data = tmp_path / folder
    data.mkdir()
    for s in ("train", "dev", "test"):
        lines = (OWN / folder / f"{s}.csv").read_text().splitlines()
        (data / f"{s}.csv").write_text("\n".join(edit(lines) if s == split else lines) + "\n")
    task_type = "token" if folder == "per_base" and split == "train" else "auto"
    with pytest.raises(GUEDataError, match=message):
        read_labeled_task(str(data), task_type)


# --- classification with string labels + predict.py -------------------------------------------

def test_string_labels_become_id2label_and_predict_reproduces_the_trainer(classification_run, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(classification_run, trust_remote_code=True)
    assert config.id2label == {0: "ecoli", 1: "lambda", 2: "mito"} and config.label2id["mito"] == 2
    out = tmp_path / "pred.csv"
    assert predict.main([str(classification_run), str(OWN / "classification" / "test.csv"), "--output", str(out),
                         "--batch_size", "7"]) == 0
    trainer_rows, ours = read_rows(classification_run / "test_predictions.csv"), read_rows(out)
    assert len(ours) == 60
    for t, o in zip(trainer_rows, ours):
        assert o["label"] == t["label"]  # carried through from the input
        assert o["predicted_label"] == t["predicted_label"]
        for column in ("prob_ecoli", "prob_lambda", "prob_mito", "score"):
            # float32 rounding: different batch companions and order than the Trainer's batches
            assert float(o[column]) == pytest.approx(float(t[column]), abs=2e-6), column


def test_predict_rc_tta_averages_both_strands(classification_run, tmp_path):
    from dnabert2.modeling_bert import BertForSequenceClassification

    out = tmp_path / "rc.csv"
    predict.main([str(classification_run), str(OWN / "classification" / "test.csv"), "--output", str(out), "--rc_tta"])
    rows = read_rows(out)[:12]
    model = BertForSequenceClassification.from_pretrained(classification_run).eval()
    tok = load_tokenizer(str(classification_run))
    seqs = [r["sequence"] for r in read_rows(OWN / "classification" / "test.csv")[:12]]
    with torch.no_grad():
        fwd = model(**tok(seqs, padding=True, return_tensors="pt")).logits
        rev = model(**tok([reverse_complement(s) for s in seqs], padding=True, return_tensors="pt")).logits
    expected = torch.softmax((fwd + rev) / 2, -1)
    got = torch.tensor([[float(r[f"prob_{n}"]) for n in ("ecoli", "lambda", "mito")] for r in rows])
    assert torch.allclose(got, expected, atol=2e-6)


def test_predict_windows_average_the_logits_of_the_windows(classification_run):
    from dnabert2.prediction import load_predictor

    predictor = load_predictor(str(classification_run))
    seq = next(iter_records([str(REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz")]))[1][:600]
    tok, model = predictor.tokenizer, predictor.model
    ids = tok(seq, add_special_tokens=False)["input_ids"]
    width = 30 - 2
    starts = list(range(0, len(ids) - width, width - width // 8)) + [len(ids) - width]
    with torch.no_grad():
        windows = [model(input_ids=torch.tensor([[tok.cls_token_id, *ids[s:s + width], tok.sep_token_id]])).logits[0] for s in starts]
    (got,) = predictor.logits([seq], max_length=30)
    assert len(starts) > 3
    assert np.allclose(got, torch.stack(windows).mean(0).numpy(), atol=1e-5)


def test_predict_resumes_after_an_interruption_and_writes_atomically(classification_run, tmp_path, monkeypatch):
    from dnabert2.prediction import Predictor

    data = OWN / "classification" / "test.csv"
    reference = tmp_path / "reference.csv"
    predict.main([str(classification_run), str(data), "--output", str(reference), "--chunk_records", "16"])
    calls = []
    real = Predictor.logits

    def crash_on_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "logits", crash_on_third)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        predict.main([str(classification_run), str(data), "--output", str(out), "--chunk_records", "16"])
    assert not out.exists()  # never a half-written output
    assert sorted(p.name for p in (tmp_path / "out.csv.partial").iterdir()) == ["chunk_000000.npz", "chunk_000001.npz", "manifest.json"]
    calls.clear()
    monkeypatch.setattr(Predictor, "logits", lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    predict.main([str(classification_run), str(data), "--output", str(out), "--chunk_records", "16"])
    assert len(calls) == 2  # chunks 2 and 3 (60 rows in chunks of 16) only
    assert out.read_text() == reference.read_text()
    assert not (tmp_path / "out.csv.partial").exists()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        predict.main([str(classification_run), str(data), "--output", str(out)])


@pytest.mark.parametrize("content,message", [
    ("id,sequence\na,ACGTACGT\nb,\n", r"in\.csv:3: empty sequence in column 'sequence'"),
    ("id,seq\na,ACGTACGT\n", r"in\.csv:1: header \['id', 'seq'\]; expected a 'sequence' column"),
    (">r1\nACGT\n>r2\n>r3\nACGT\n", r"in\.fa:3: record 'r2' has no sequence"),
], ids=["empty-sequence", "missing-column", "empty-fasta-record"])
def test_predict_bad_input_names_file_and_line(classification_run, tmp_path, content, message):
    path = tmp_path / ("in.fa" if content.startswith(">") else "in.csv")
    path.write_text(content)
    with pytest.raises(GenomeFormatError, match=message):
        predict.main([str(classification_run), str(path), "--output", str(tmp_path / "o.csv")])
    assert not (tmp_path / "o.csv").exists()


def test_predict_reads_fasta_and_writes_parquet(classification_run, tmp_path):
    import pyarrow.parquet as pq

    fasta = tmp_path / "x.fa"
    rows = read_rows(OWN / "classification" / "test.csv")[:5]
    fasta.write_text("".join(f">seq{i} test\n{r['sequence']}\n" for i, r in enumerate(rows)))
    predict.main([str(classification_run), str(fasta), "--output", str(tmp_path / "x.parquet")])
    table = pq.read_table(tmp_path / "x.parquet").to_pydict()
    assert table["id"] == [f"seq{i} test" for i in range(5)]
    assert set(table["predicted_label"]) <= {"ecoli", "lambda", "mito"}


# --- regression ---------------------------------------------------------------------------------

def test_regression_learns_gc_content_of_real_windows(tmp_path):
    # Target: G+C fraction of 100 bp windows of the three bundled genomes (computed, so learnable).
    model = tiny(tmp_path / "tiny", hidden_dropout_prob=0.0)
    pool = BUILD.pooled(100, random.Random(1))
    data = tmp_path / "gc"
    data.mkdir()
    start = 0
    for split, n in (("train", 1000), ("dev", 100), ("test", 200)):
        rows = "".join(f"{w},{BUILD.gc(w):.4f}\n" for w in pool[start : start + n])
        (data / f"{split}.csv").write_text("sequence,gc\n" + rows)
        start += n
    results = finetune(model, data, tmp_path / "out", "--num_train_epochs", "3", "--learning_rate", "3e-3",
                       "--eval_steps", "60", "--save_steps", "60")
    assert results["task_type"] == "regression"
    assert results["test_spearman"] > 0.8
    rows = read_rows(tmp_path / "out" / "test_predictions.csv")
    from scipy.stats import spearmanr

    assert spearmanr([float(r["pred_gc"]) for r in rows], [float(r["label_gc"]) for r in rows])[0] == pytest.approx(results["test_spearman"], abs=1e-3)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert config.problem_type == "regression" and config.id2label == {0: "gc"}
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| spearman | 1 |" in summary and (tmp_path / "out" / "summary.png").exists()


# --- multi-label --------------------------------------------------------------------------------

def test_multilabel_names_round_trip_and_predict_uses_the_tuned_thresholds(tiny_model, tmp_path):
    out = tmp_path / "out"
    results = finetune(tiny_model, OWN / "multilabel", out, "--num_train_epochs", "2", "--learning_rate", "3e-3")
    assert {"test_micro_f1", "test_macro_f1", "test_auroc_gatc", "test_auprc_gc_rich", "test_macro_auprc"} <= set(results)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    assert config.problem_type == "multi_label_classification"
    assert config.id2label == {0: "gatc", 1: "gc_rich", 2: "homopolymer"}
    spec = TaskSpec.load(str(out))
    assert len(spec.thresholds) == 3 and all(0 < t < 1 for t in spec.thresholds)
    pred = tmp_path / "pred.csv"
    predict.main([str(out), str(OWN / "multilabel" / "test.csv"), "--output", str(pred)])
    rows = read_rows(pred)
    for row in rows:
        expected = [n for n, t in zip(spec.label_names, spec.thresholds) if float(row[f"prob_{n}"]) >= t]
        assert row["predicted_labels"] == ";".join(expected)
    assert [r["predicted_labels"] for r in rows] == [r["predicted_labels"] for r in read_rows(out / "test_predictions.csv")]
    predict.main([str(out), str(OWN / "multilabel" / "test.csv"), "--output", str(pred), "--threshold", "0.0", "--overwrite"])
    assert {r["predicted_labels"] for r in read_rows(pred)} == {"gatc;gc_rich;homopolymer"}


def test_threshold_tuning_maximises_f1_on_dev():
    from dnabert2.task_types import tune_thresholds

    probs = np.array([[0.1, 0.9], [0.3, 0.8], [0.35, 0.2], [0.7, 0.1]])
    labels = np.array([[0, 1], [1, 1], [1, 0], [1, 0]])
    # label 0: positives at 0.3, 0.35, 0.7 and a negative at 0.1 -> any threshold in (0.1, 0.3]; the
    # grid value closest to 0.5 is 0.3. label 1: positives 0.9, 0.8 -> (0.2, 0.8]; closest to 0.5 is 0.5.
    assert tune_thresholds(probs, labels) == [0.3, 0.5]


# --- per-base -----------------------------------------------------------------------------------

def lambda_with_n_runs():
    seq = next(iter_records([str(REPO_ROOT / "data" / "genomes" / "phage_lambda.fa.gz")]))[1][:400].upper()
    return seq[:100] + "NNNNNNN" + seq[100:250] + "N" + seq[250:]


def test_token_labels_and_base_predictions_round_trip_on_real_sequence_with_awkward_tokens():
    from dnabert2.embedding import token_spans

    seq = lambda_with_n_runs()
    tok = load_tokenizer(str(REPO_ROOT))
    (ids,), (spans,) = token_spans(tok, [seq])
    lengths = spans[:, 1] - spans[:, 0]
    assert lengths.max() >= 6 and (spans[1:, 0] == spans[:-1, 1]).all() and spans[0, 0] == 0 and spans[-1, 1] == len(seq)
    n_tokens = [t for t, (a, b) in enumerate(spans) if seq[a:b] == "N"]
    assert len(n_tokens) == 8  # every N is a token of its own
    base = np.array([int(c) for c in BUILD.cpg_bases(seq)])
    token_labels = labels_to_tokens(base, spans)
    # reference, base by base: a token is positive when any base it covers is
    expected = [int(any(base[a:b])) for a, b in spans]
    assert token_labels.tolist() == expected
    back = tokens_to_bases(token_labels, spans, len(seq))
    for i in range(len(seq)):
        t = int(np.searchsorted(spans[:, 1], i, side="right"))
        assert back[i] == expected[t]
    assert (back >= base).all() and back.sum() > base.sum()  # any-positive widens CpGs to whole tokens
    # labels constant within tokens survive the round trip exactly
    assert (tokens_to_bases(labels_to_tokens(back, spans), spans, len(seq)) == back).all()


def test_token_model_learns_cpg_positions_and_predict_maps_back_to_bases(tiny_model, tmp_path):
    # Rule on real sequence: a base is positive when it is the C or the G of a CpG (data/own_data/build.py).
    from dnabert2.configuration_bert import BertConfig

    out = tmp_path / "out"
    results = finetune(tiny_model, OWN / "per_base", out, "--num_train_epochs", "8", "--learning_rate", "3e-3",
                       "--eval_steps", "60", "--save_steps", "60")
    labels = "".join(r["cpg"] for r in read_rows(OWN / "per_base" / "test.csv"))
    prevalence = labels.count("1") / len(labels)
    # chance: a predictor that marks bases positive at random at the positive rate has F1 = prevalence
    assert results["task_type"] == "token" and prevalence < 0.2
    assert results["test_base_f1"] > 2 * prevalence and results["test_base_mcc"] > 0.2
    assert "BertForTokenClassification" in BertConfig.from_pretrained(out).architectures
    pred = tmp_path / "pred.csv"
    predict.main([str(out), str(OWN / "per_base" / "test.csv"), "--output", str(pred)])
    ours, trainer_rows = read_rows(pred), read_rows(out / "test_predictions.csv")
    assert all(len(o["per_base_prediction"]) == len(o["sequence"]) if "sequence" in o else True for o in ours)
    assert [o["per_base_prediction"] for o in ours] == [t["per_base_prediction"] for t in trainer_rows]
    assert all(len(t["per_base_prediction"]) == 100 for t in trainer_rows)
    # --rc_tta flips the reverse strand's per-base outputs back: a sequence and its reverse
    # complement then get mirror-image predictions (the two strands' logits, summed in either order)
    seqs = [r["sequence"] for r in read_rows(OWN / "per_base" / "test.csv")[:10]]
    (tmp_path / "fwd.csv").write_text("sequence\n" + "\n".join(seqs) + "\n")
    (tmp_path / "rev.csv").write_text("sequence\n" + "\n".join(reverse_complement(s) for s in seqs) + "\n")
    for name in ("fwd", "rev"):
        predict.main([str(out), str(tmp_path / f"{name}.csv"), "--output", str(tmp_path / f"{name}_pred.csv"), "--rc_tta"])
    fwd, rev = read_rows(tmp_path / "fwd_pred.csv"), read_rows(tmp_path / "rev_pred.csv")
    assert [r["per_base_prediction"][::-1] for r in rev] == [r["per_base_prediction"] for r in fwd]


def test_token_classification_loads_through_auto_class(tmp_path):
    from transformers import AutoModelForTokenClassification

    from dnabert2.configuration_bert import BertConfig
    from dnabert2.modeling_bert import BertForTokenClassification

    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                  intermediate_size=64, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    ids = torch.tensor([[1, 7, 9, 11, 2], [1, 8, 2, 3, 3]])
    mask = (ids != 3).long()
    with torch.no_grad():
        a, b = model(ids, attention_mask=mask).logits, loaded(ids, attention_mask=mask).logits
    assert a.shape == (2, 5, 3) and torch.equal(a, b)
    assert (a[1, 3:] == 0).all()  # padding
    labels = torch.tensor([[-100, 0, 2, 1, -100], [-100, 1, -100, -100, -100]])
    loss = model(ids, attention_mask=mask, labels=labels).loss
    flat = a.reshape(-1, 3)[labels.reshape(-1) != -100]
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(flat, labels.reshape(-1)[labels.reshape(-1) != -100]))


# --- embedding layer choice ---------------------------------------------------------------------

@pytest.mark.parametrize("layer,pick", [(-1, lambda hs: hs[-1]), (2, lambda hs: hs[2]), (0, lambda hs: hs[0]),
                                        ("-2:", lambda hs: (hs[-2] + hs[-1]) / 2), ("1:3", lambda hs: (hs[1] + hs[2]) / 2)])
def test_embed_layer_equals_output_hidden_states(layer, pick, no_grad):
    from dnabert2.modeling_bert import BertModel

    model = BertModel.from_pretrained(str(REPO_ROOT), add_pooling_layer=False).eval()
    tok = load_tokenizer(str(REPO_ROOT))
    seqs = [r["sequence"] for r in read_rows(OWN / "regression" / "test.csv")[:3]]
    got = model.embed(tok, seqs, layer=layer)
    batch = tok(seqs, padding=True, return_tensors="pt")
    hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1
    chosen = pick(hs)
    for i, seq in enumerate(seqs):
        n = int(batch["attention_mask"][i].sum())
        assert np.allclose(got[i], chosen[i, 1 : n - 1].mean(0).numpy(), atol=1e-5)  # mean over tokens, no specials


def test_embed_layer_out_of_range_is_refused():
    from dnabert2.modeling_bert import BertModel

    model = BertModel.from_pretrained(str(REPO_ROOT), add_pooling_layer=False).eval()
    with pytest.raises(ValueError, match=r"hidden states 0\.\.4"):
        model.embed(load_tokenizer(str(REPO_ROOT)), ["ACGTACGT"], layer=7)
    with pytest.raises(ValueError, match="expected an integer"):
        model.embed(load_tokenizer(str(REPO_ROOT)), ["ACGTACGT"], layer="last")


def test_embed_script_layer_option(tmp_path):
    from dnabert2 import embed as embed_script
    from dnabert2.modeling_bert import BertModel

    rows = read_rows(OWN / "regression" / "test.csv")[:4]
    fasta = tmp_path / "x.fa"
    fasta.write_text("".join(f">s{i}\n{r['sequence']}\n" for i, r in enumerate(rows)))
    embed_script.main([str(fasta), "--output", str(tmp_path / "e.npy"), "--layer=-3:"])
    model = BertModel.from_pretrained(str(REPO_ROOT), add_pooling_layer=False).eval()
    expected = model.embed(load_tokenizer(str(REPO_ROOT)), [r["sequence"] for r in rows], layer="-3:")
    assert np.allclose(np.load(tmp_path / "e.npy"), expected, atol=1e-6)
    assert not np.allclose(expected, model.embed(load_tokenizer(str(REPO_ROOT)), [r["sequence"] for r in rows]), atol=1e-3)


def test_predict_on_lora_adapters_plus_base_equals_the_merged_folder(tiny_model, tmp_path):
    out = tmp_path / "lora"
    finetune(tiny_model, OWN / "classification", out, "--num_train_epochs", "1", "--learning_rate", "3e-3",
             "--use_lora", "--max_train_samples", "64")
    assert (out / "adapter_config.json").exists() and (out / "task.json").exists()
    data = OWN / "classification" / "test.csv"
    predict.main([str(out), str(data), "--output", str(tmp_path / "adapters.csv")])
    predict.main([str(out / "merged"), str(data), "--output", str(tmp_path / "merged.csv")])
    adapters, merged = read_rows(tmp_path / "adapters.csv"), read_rows(tmp_path / "merged.csv")
    assert [r["predicted_label"] for r in adapters] == [r["predicted_label"] for r in merged]
    for a, m in zip(adapters, merged):
        assert float(a["prob_ecoli"]) == pytest.approx(float(m["prob_ecoli"]), abs=1e-5)


def test_regression_loss_with_several_targets_is_the_mse_over_all_of_them(no_grad):
    from dnabert2.configuration_bert import BertConfig
    from dnabert2.modeling_bert import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                     intermediate_size=64, num_labels=2, problem_type="regression")).eval()
    ids = torch.tensor([[1, 7, 9, 2], [1, 8, 11, 2], [1, 5, 6, 2]])
    labels = torch.tensor([[0.5, 0.1], [0.4, 0.9], [0.2, 0.3]])
    out = model(ids, labels=labels)
    assert out.logits.shape == (3, 2)
    assert torch.allclose(out.loss, ((out.logits - labels) ** 2).mean())
