"""finetune_gue.py with a tiny model: on a task built from real genome windows that it learns within
seconds (so predictions, metrics and strand averaging can be checked by value), and on real GUE rows
(bundled samples in data/gue_sample) for the data handling and the benchmark summary.
"""

import csv
import json
import random

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
from dnabert2 import finetune_gue
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.genome_io import iter_records
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


GENOMES = REPO_ROOT / "data" / "genomes"
# Learnable settings: mean pooling and no warm-up let the random tiny model separate the strand
# task in 4 epochs (~3 s on one core); the [CLS] pooler needs about twice as many.
LEARN = ["--classifier_pooling", "mean", "--warmup_steps", "0", "--num_train_epochs", "4",
         "--per_device_train_batch_size", "32", "--eval_steps", "10", "--save_steps", "10"]
WINDOW_BP = 70


def hand_reverse_complement(seq):
    """Independent of dna_alphabet: A/C/G/T only."""
    return seq.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def strand_task(root, three_class=False):
    """A classification task built from real sequence that a tiny model learns within seconds.

    The human mitochondrial genome (data/genomes/human_mito.fa.gz) is cut into 70-bp windows.
    Label 0: a window as it reads on the reference (light) strand, which is C-rich and G-poor
    (C 31%, G 13%); label 1: the reverse complement of the same window (G-rich, C-poor). Each window
    appears once per strand. With three_class, label 2: a 70-bp window of phage lambda
    (data/genomes/phage_lambda.fa.gz; C and G balanced, about 50% GC). Windows are split by position
    (first 70% train, next 15% dev, last 15% test), so no window is in two splits.
    Because the test split holds both strands of every window, strand averaging cannot tell the
    two classes apart: the averaged logits of a window and of its reverse complement are equal.
    """
    (_, mito), = iter_records([str(GENOMES / "human_mito.fa.gz")])
    (_, phage), = iter_records([str(GENOMES / "phage_lambda.fa.gz")])
    windows = [mito[i : i + WINDOW_BP] for i in range(0, len(mito) - WINDOW_BP + 1, WINDOW_BP)]
    others = [phage[i : i + WINDOW_BP] for i in range(0, len(phage) - WINDOW_BP + 1, WINDOW_BP)]
    n = len(windows)
    bounds = {"train": (0, int(0.7 * n)), "dev": (int(0.7 * n), int(0.85 * n)), "test": (int(0.85 * n), n)}
    folder = root / ("three_class" if three_class else "strand")
    folder.mkdir(parents=True)
    for split, (lo, hi) in bounds.items():
        rows = []
        for k in range(lo, hi):
            rows += [(windows[k], 0), (hand_reverse_complement(windows[k]), 1)]
            if three_class:
                rows.append((others[k], 2))
        random.Random(0).shuffle(rows)
        (folder / f"{split}.csv").write_text("sequence,label\n" + "".join(f"{q},{y}\n" for q, y in rows))
    return folder


def read_predictions(out):
    with open(out / "test_predictions.csv") as f:
        return list(csv.DictReader(f))


def logits_of(folder, sequences):
    """(n, num_labels) logits of the saved model, loaded as users load it."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        return model(**load_tokenizer(str(folder))(sequences, padding=True, return_tensors="pt")).logits


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
    data = strand_task(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("binary")
    results = finetune(tiny_model, out, "--data_path", str(data), *LEARN, "--rc_tta")
    return out, results


def test_fine_tuning_learns_the_strand_task(binary_run):
    out, results = binary_run
    rows = read_predictions(out)
    assert len(rows) == 72  # 36 test windows x 2 strands
    predictions = [int(r["prediction"]) for r in rows]
    labels = [int(r["label"]) for r in rows]
    assert set(predictions) == {0, 1}, "predictions are not constant"
    assert results["test_matthews_correlation"] > 0.5
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    assert results["test_matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, predictions))
    assert results["test_accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert results["test_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))


def test_end_to_end_writes_predictions_and_a_folder_that_reproduces_them(binary_run):
    out, results = binary_run
    assert results["best_model_checkpoint"]
    rows = read_predictions(out)
    assert list(rows[0]) == ["sequence_0", "label", "prediction", "prob_0", "prob_1", "rc_tta_prediction"]
    logits = logits_of(out, [r["sequence_0"] for r in rows])  # the saved best model, reloaded
    probs = torch.softmax(logits, -1)
    assert [int(r["prediction"]) for r in rows] == logits.argmax(-1).tolist()
    written = torch.tensor([[float(r["prob_0"]), float(r["prob_1"])] for r in rows])
    assert (written - probs).abs().max() <= 1e-5  # written with 6 decimals
    assert (out / "tokenizer.json").exists() and (out / "modeling_bert.py").exists()


def test_rc_tta_averages_the_logits_of_both_strands(binary_run):
    out, results = binary_run
    rows = read_predictions(out)
    seqs = [r["sequence_0"] for r in rows]
    # The test split holds both strands of every window: the reverse complement of row i is row partner[i].
    row_of = {q: i for i, q in enumerate(seqs)}
    partner = [row_of[hand_reverse_complement(q)] for q in seqs]
    fwd = logits_of(out, seqs)  # (72, 2)
    rev = fwd[partner]  # logits of each row's reverse complement
    assert (fwd.argmax(-1) != rev.argmax(-1)).float().mean() > 0.5, "the two strands get different logits"
    manual = ((fwd + rev) / 2).argmax(-1)
    written = [int(r["rc_tta_prediction"]) for r in rows]
    assert written == manual.tolist()
    assert written != [int(r["prediction"]) for r in rows], "strand averaging changed some predictions"
    labels = np.array([int(r["label"]) for r in rows])
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    assert results["test_rc_tta_matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, manual.numpy()))
    assert results["test_rc_tta_accuracy"] == pytest.approx(accuracy_score(labels, manual.numpy()))
    # Averaged logits are the same for both strands of a window, so exactly one of the pair is right
    # (up to float ties between two batch layouts of the same sequence).
    assert abs(results["test_rc_tta_accuracy"] - 0.5) <= 1 / len(rows)


def test_three_class_task_predicts_every_class(tiny_model, tmp_path):
    data = strand_task(tmp_path / "gue", three_class=True)
    results = finetune(tiny_model, tmp_path / "out", "--data_path", str(data), *LEARN)
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tmp_path / "out", trust_remote_code=True).num_labels == 3
    rows = read_predictions(tmp_path / "out")
    assert list(rows[0])[-3:] == ["prob_0", "prob_1", "prob_2"]
    for c in (0, 1, 2):
        mine = [int(r["prediction"]) for r in rows if int(r["label"]) == c]
        assert len(mine) == 36 and mine.count(c) / len(mine) > 0.5, f"class {c}: recall {mine.count(c) / len(mine):.2f}"
    assert results["test_matthews_correlation"] > 0.5


def test_same_seed_gives_identical_results_and_another_seed_does_not(tiny_model, tmp_path):
    data = strand_task(tmp_path / "gue")
    short = [*LEARN, "--num_train_epochs", "1", "--data_path", str(data)]
    a = finetune(tiny_model, tmp_path / "a", *short, "--seed", "3")
    b = finetune(tiny_model, tmp_path / "b", *short, "--seed", "3")
    c = finetune(tiny_model, tmp_path / "c", *short, "--seed", "4")
    for r in (a, b, c):
        r.pop("best_model_checkpoint")
    assert a == b
    assert read_predictions(tmp_path / "a") == read_predictions(tmp_path / "b")
    from safetensors.torch import load_file

    weights = {run: load_file(tmp_path / run / "model.safetensors") for run in "abc"}
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not torch.equal(weights["a"]["classifier.weight"], weights["c"]["classifier.weight"])
    probs = {run: [r["prob_0"] for r in read_predictions(tmp_path / run)] for run in "ac"}
    assert probs["a"] != probs["c"], "another seed gives other test probabilities"


def test_lora_trains_only_adapters_and_classifier_and_reloads(tiny_model, tmp_path, capsys):
    data = strand_task(tmp_path / "gue")
    finetune(tiny_model, tmp_path / "out", "--data_path", str(data), *LEARN, "--num_train_epochs", "1",
             "--use_lora", "--lora_r", "4")
    assert "trainable params" in capsys.readouterr().out
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from dnabert2.modeling_bert import BertForSequenceClassification

    def base():
        return BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2, classifier_pooling="mean")

    model = PeftModel.from_pretrained(base(), tmp_path / "out", is_trainable=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n or "pooler" in n for n in trainable)
    assert any("Wqkv" in n for n in trainable) and any("gated_layers" in n for n in trainable)
    assert not (tmp_path / "out" / "model.safetensors").exists(), "a LoRA run saves adapters only"

    # The adapters the run started from: the same seed (TrainingArguments' default, 42) before build_model.
    finetune_gue.set_seed(42)
    initial = finetune_gue.build_model(
        finetune_gue.ModelArguments(model_name_or_path=tiny_model, use_lora=True, lora_r=4, classifier_pooling="mean"), 2
    )
    start = {n.replace(".default", ""): p.detach() for n, p in initial.named_parameters() if "lora_" in n}
    trained = load_file(tmp_path / "out" / "adapter_model.safetensors")
    lora = {k: v for k, v in trained.items() if "lora_" in k}
    assert len(lora) == len(start) > 0
    assert all(torch.count_nonzero(start[k]) == 0 for k in start if "lora_B" in k), "peft starts lora_B at 0"
    unchanged = [k for k, v in lora.items() if torch.equal(v, start[k])]
    assert not unchanged, f"adapters that training never changed: {unchanged}"

    merged_dir = tmp_path / "out" / "merged"
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir, trust_remote_code=True).eval()
    assert type(merged).__module__.startswith("transformers_modules"), "loaded through the folder's remote code"
    seqs = [r["sequence_0"] for r in read_predictions(tmp_path / "out")][:8]
    batch = load_tokenizer(str(merged_dir))(seqs, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.eval()(**batch).logits
        assert (merged(**batch).logits - expected).abs().max() <= 1e-5


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
    runs = json.loads((tmp_path / "out" / "all_runs.json").read_text())
    for task in rows:
        mccs = [100 * r["test_matthews_correlation"] for r in runs if r["task"] == task]
        assert [r["seed"] for r in runs if r["task"] == task] == [1, 2]
        assert float(rows[task]["mean"]) == pytest.approx(np.mean(mccs))
        assert float(rows[task]["std"]) == pytest.approx(np.std(mccs))
        seed_2 = json.loads((tmp_path / "out" / task / "seed_2" / "test_results.json").read_text())
        (run_2,) = [r for r in runs if r["task"] == task and r["seed"] == 2]
        assert seed_2["test_matthews_correlation"] == run_2["test_matthews_correlation"]
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
