"""finetune_gue.py on real GUE rows (bundled samples in data/gue_sample) with a tiny model."""

import csv
import json

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from dnabert2 import finetune_gue
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import reverse_complement
from dnabert2.gue import GUEDataError, task_preset

SAMPLES = REPO_ROOT / "data" / "gue_sample"
FAST = ["--num_train_epochs", "2", "--eval_steps", "5", "--save_steps", "5", "--learning_rate", "2e-3",
        "--disable_tqdm", "true", "--logging_steps", "5", "--per_device_eval_batch_size", "32"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from dnabert2.configuration_bert import BertConfig
    from dnabert2.modeling_bert import BertForMaskedLM
    from dnabert2.training_callbacks import save_tokenizer

    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    save_tokenizer(load_tokenizer(str(REPO_ROOT)), folder)
    return str(folder)


def small_task(root, task, rows=(160, 40, 40)):
    """Copy the first rows of a bundled sample task into root/task."""
    folder = root / task
    folder.mkdir(parents=True)
    for split, n in zip(("train", "dev", "test"), rows):
        lines = (SAMPLES / task / f"{split}.csv").read_text().splitlines()
        (folder / f"{split}.csv").write_text("\n".join(lines[: n + 1]) + "\n")
    return folder


def finetune(model, out, *extra):
    finetune_gue.main(["--model_name_or_path", model, "--output_dir", str(out), *FAST, *extra])
    return json.loads((out / "test_results.json").read_text())


@pytest.fixture(scope="module")
def binary_run(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("gue")
    small_task(root, "prom/prom_core_all")
    out = tmp_path_factory.mktemp("binary")
    results = finetune(tiny_model, out, "--task", "prom/prom_core_all", "--gue_root", str(root), "--rc_tta")
    return out, results, root


def test_end_to_end_writes_metrics_predictions_and_a_loadable_folder(binary_run):
    out, results, _ = binary_run
    for metric in ("matthews_correlation", "f1", "accuracy", "precision", "recall"):
        assert -1.0 <= results[f"test_{metric}"] <= 1.0
    assert results["best_model_checkpoint"]
    with open(out / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and {"label", "prediction", "prob_0", "prob_1"} <= rows[0].keys()
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    assert model.config.num_labels == 2
    assert (out / "tokenizer.json").exists() and (out / "modeling_bert.py").exists()


def test_rc_tta_averages_the_logits_of_both_strands(binary_run):
    out, results, root = binary_run
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    tokenizer = load_tokenizer(str(out))
    with open(out / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    seqs = [r["sequence_0"] for r in rows]
    max_length = task_preset("prom/prom_core_all").model_max_length
    with torch.no_grad():
        fwd = model(**tokenizer(seqs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")).logits
        rev = model(**tokenizer([reverse_complement(s) for s in seqs], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")).logits
    assert [int(r["rc_tta_prediction"]) for r in rows] == ((fwd + rev) / 2).argmax(-1).tolist()
    assert [int(r["prediction"]) for r in rows] == fwd.argmax(-1).tolist()
    labels = np.array([int(r["label"]) for r in rows])
    from sklearn.metrics import matthews_corrcoef

    assert results["test_rc_tta_matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, ((fwd + rev) / 2).argmax(-1).numpy()))


def test_three_class_task(tiny_model, tmp_path):
    # GUE's splice set is eval-only here: the bundled train/dev come from its dev split (data/README.md).
    small_task(tmp_path / "gue", "splice/reconstructed", rows=(150, 40, 40))
    results = finetune(tiny_model, tmp_path / "out", "--task", "splice/reconstructed", "--gue_root", str(tmp_path / "gue"))
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tmp_path / "out", trust_remote_code=True).num_labels == 3
    assert "test_matthews_correlation" in results


def test_same_seed_gives_identical_metrics(tiny_model, tmp_path):
    data = small_task(tmp_path / "gue", "prom/prom_core_all", rows=(80, 24, 24))
    a = finetune(tiny_model, tmp_path / "a", "--data_path", str(data), "--seed", "3")
    b = finetune(tiny_model, tmp_path / "b", "--data_path", str(data), "--seed", "3")
    a.pop("best_model_checkpoint"), b.pop("best_model_checkpoint")
    assert a == b


def test_lora_trains_only_adapters_and_classifier_and_reloads(tiny_model, tmp_path, capsys):
    data = small_task(tmp_path / "gue", "prom/prom_core_all", rows=(80, 24, 24))
    finetune(tiny_model, tmp_path / "out", "--data_path", str(data), "--use_lora", "--lora_r", "4")
    assert "trainable params" in capsys.readouterr().out
    from peft import PeftModel

    from dnabert2.modeling_bert import BertForSequenceClassification

    model = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2), tmp_path / "out", is_trainable=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n or "pooler" in n for n in trainable)
    assert any("Wqkv" in n for n in trainable) and any("gated_layers" in n for n in trainable)
    assert not (tmp_path / "out" / "model.safetensors").exists(), "a LoRA run saves adapters only"
    merged = BertForSequenceClassification.from_pretrained(tmp_path / "out" / "merged")
    ids = load_tokenizer(tiny_model)(["ACGTAGGATTACAGATTACA"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged.eval()(**ids).logits, model.eval()(**ids).logits, atol=1e-5)


def test_lora_with_modules_the_model_lacks_is_refused(tiny_model, tmp_path):
    data = small_task(tmp_path / "gue", "prom/prom_core_all", rows=(20, 8, 8))
    with pytest.raises(ValueError, match="do not exist in this model"):
        finetune(tiny_model, tmp_path / "out", "--data_path", str(data), "--use_lora", "--lora_target_modules", "query,value")


def test_whole_benchmark_summarises_tasks_over_seeds(tiny_model, tmp_path):
    small_task(tmp_path / "gue", "prom/prom_core_all", rows=(60, 20, 20))
    small_task(tmp_path / "gue", "splice/reconstructed", rows=(60, 20, 20))
    finetune_gue.main(["--model_name_or_path", tiny_model, "--output_dir", str(tmp_path / "out"), *FAST,
                       "--tasks", "all", "--gue_root", str(tmp_path / "gue"), "--seeds", "1", "2"])
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = {r["task"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"prom/prom_core_all", "splice/reconstructed"}
    assert rows["prom/prom_core_all"]["seeds"] == "2"
    assert float(rows["prom/prom_core_all"]["paper_dnabert2"]) == 69.37
    assert "±" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "summary.png").exists()
    assert (tmp_path / "out" / "splice" / "reconstructed" / "seed_2" / "test_results.json").exists()


# --- presets ----------------------------------------------------------------------------------

def _resolve(argv):
    parser = finetune_gue.ScriptParser((finetune_gue.ModelArguments, finetune_gue.DataArguments, finetune_gue.GUETrainingArguments))
    _, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    return finetune_gue.resolve_runs(data_args, training_args, finetune_gue.explicit_flags(argv))


def test_task_preset_fills_in_the_paper_settings():
    (task, data, training), = _resolve(["--task", "mouse/0", "--gue_root", "GUE"])
    assert data.data_path == "GUE/mouse/0" and data.model_max_length == 30
    assert training.max_steps == 1000 and training.warmup_steps == 30 and training.learning_rate == 3e-5


def test_an_explicit_flag_beats_the_preset():
    (_, data, training), = _resolve(["--task", "tf/0", "--gue_root", "GUE", "--num_train_epochs", "1", "--model_max_length", "64"])
    assert training.num_train_epochs == 1 and data.model_max_length == 64
    assert training.warmup_steps == 30  # still from the preset


@pytest.mark.parametrize("task,length,epochs", [("EMP/H3", 128, 3), ("prom/prom_core_tata", 20, 10),
                                                ("prom/prom_300_notata", 70, 4), ("splice/reconstructed", 80, 5)])
def test_preset_table(task, length, epochs):
    preset = task_preset(task)
    assert (preset.model_max_length, preset.num_train_epochs) == (length, epochs)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown GUE task"):
        task_preset("rna/foo")


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "split,content,message",
    [
        ("train", None, r"train\.csv: missing split file"),
        ("train", "seq,class\nACGT,1\n", r"train\.csv:1: header"),
        ("train", "sequence,label\nACGT,1\nACGT,yes\n", r"train\.csv:3: label 'yes' is not an integer"),
        ("dev", "sequence,label\nACGT,1\n,0\n", r"dev\.csv:3: empty sequence"),
        ("test", "sequence,label\nACGT,1\nACGT,7\n", r"test\.csv:3: label 7 never appears in train"),
        ("train", "sequence,label\nACGT,1\nACGA,1\n", r"train\.csv: only one class"),
    ],
    ids=["missing-split", "wrong-header", "non-integer-label", "empty-sequence", "unseen-label", "single-class"],
)
def test_bad_data_is_refused_with_file_and_line(tiny_model, tmp_path, split, content, message):
    data = small_task(tmp_path / "gue", "prom/prom_core_all", rows=(20, 8, 8))
    if content is None:
        (data / f"{split}.csv").unlink()
    else:
        (data / f"{split}.csv").write_text(content)
    with pytest.raises(GUEDataError, match=message):
        finetune(tiny_model, tmp_path / "out", "--data_path", str(data))


def test_non_acgt_characters_are_counted_and_reported(tiny_model, tmp_path, capsys):
    data = small_task(tmp_path / "gue", "prom/prom_core_all", rows=(40, 8, 8))
    lines = (data / "train.csv").read_text().splitlines()
    lines[1] = "ACGTNNRACGTACGTTTGCA," + lines[1].split(",")[1]
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    finetune(tiny_model, tmp_path / "out", "--data_path", str(data), "--num_train_epochs", "1")
    assert "3 non-ACGT characters ('N': 2, 'R': 1)" in capsys.readouterr().out


def test_max_train_samples_takes_a_fixed_subset():
    from dnabert2.gue import read_split

    split = read_split(str(SAMPLES / "prom" / "prom_core_all" / "train.csv"))
    a, b = finetune_gue.subsample(split, 100), finetune_gue.subsample(split, 100)
    assert len(a.labels) == 100 and a.sequences == b.sequences
    assert set(a.sequences[0]) <= set(split.sequences[0])
