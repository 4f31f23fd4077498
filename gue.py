"""GUE benchmark support: task presets, validated CSV loading, metrics and the summary table.

Lives here: the paper's per-task fine-tuning settings, reading `train/dev/test.csv` with errors
that name file and line, the metrics (MCC, F1, accuracy, precision, recall; sklearn, offline),
reverse-complement test-time augmentation helpers and the benchmark summary (CSV, Markdown, PNG).
Not here: the Trainer run itself (finetune_gue.py).
"""

import csv
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .cli import REPO_ROOT
from .dna_alphabet import reverse_complement

SPLITS = ("train", "dev", "test")
PAPER_SCORES = os.path.join(REPO_ROOT, "data", "dnabert2_table4_gue.csv")


# Fine-tuning learning rate by model width, used when --learning_rate is not given: the paper's 3e-5
# was tuned for DNABERT-2-117M (hidden 768); narrower models need a larger one (dev-MCC sweep in
# BENCHMARKS.md, "Does our pretraining help?"). Rows: (smallest hidden_size, learning rate).
LEARNING_RATE_BY_WIDTH = ((768, 3e-5), (0, 5e-4))


def default_learning_rate(hidden_size: int) -> float:
    """The fine-tuning learning rate for a model of this width (LEARNING_RATE_BY_WIDTH)."""
    for min_width, learning_rate in LEARNING_RATE_BY_WIDTH:
        if hidden_size >= min_width:
            return learning_rate
    raise ValueError(f"hidden_size must be positive, got {hidden_size}")


@dataclass(frozen=True)
class TaskPreset:
    model_max_length: int
    num_train_epochs: float
    max_steps: int = -1
    warmup_steps: int = 50
    per_device_train_batch_size: int = 8


def _group_and_name(task: str) -> tuple[str, str]:
    """('prom', 'prom_core_all') of 'prom/prom_core_all'; an '_eval_only' group counts as its group."""
    group, _, name = task.partition("/")
    return group.replace("_eval_only", ""), name


def task_preset(task: str) -> TaskPreset:
    """The paper's settings for a GUE task name such as 'EMP/H3', 'prom/prom_300_tata', 'tf/0'."""
    group, name = _group_and_name(task)
    if group == "EMP":
        return TaskPreset(128, 3)
    if group == "prom":
        core = name.startswith("prom_core")
        return TaskPreset(20 if core else 70, 10 if name.endswith("tata") and "notata" not in name else 4)
    if group == "splice":
        return TaskPreset(80, 5)
    if group in ("virus", "covid"):
        return TaskPreset(256, 8, per_device_train_batch_size=32)
    if group == "mouse":
        return TaskPreset(30, 5, max_steps=1000, warmup_steps=30)
    if group == "tf":
        return TaskPreset(30, 3, warmup_steps=30)
    raise ValueError(f"unknown GUE task {task!r}: expected a name under EMP/, prom/, splice/, virus/, mouse/ or tf/")


def paper_key(task: str) -> str:
    """Column name of a task in the paper's Table 4 CSV ('prom/prom_core_all' -> 'prom_core_all')."""
    group, name = _group_and_name(task)
    if group == "prom":
        return name
    if group in ("virus", "covid"):
        return "covid_f1"
    return f"{group}_{name}"


def paper_score(task: str, model: str = "DNABERT-2") -> float | None:
    with open(PAPER_SCORES, newline="") as f:
        for row in csv.DictReader(f):
            if row["model"] == model:
                value = row.get(paper_key(task))
                return float(value) if value else None
    return None


def discover_tasks(root: str) -> list[str]:
    """Every folder under root that holds train.csv, dev.csv and test.csv, as 'group/name'."""
    tasks = []
    for folder, _, files in os.walk(root):
        if all(f"{s}.csv" in files for s in SPLITS):
            tasks.append(os.path.relpath(folder, root).replace(os.sep, "/"))
    if not tasks:
        raise FileNotFoundError(f"{root}: no task folder with train.csv, dev.csv and test.csv")
    return sorted(tasks)


# Header names under which a three-column CSV is read as a sequence pair (any other three-column
# file, e.g. id,sequence,label, is refused rather than trained on its first column).
PAIR_COLUMNS = (("sequence_a", "sequence_b"), ("sequence1", "sequence2"), ("sequence_1", "sequence_2"))


class GUEDataError(ValueError):
    """A GUE CSV that does not have the expected content; the message names file and line."""


@dataclass
class Split:
    path: str
    sequences: list[list[str]]  # one list per sequence column (1, or 2 for pairs)
    labels: list[int]
    non_acgt: Counter  # non-ACGT characters seen, by character
    lines: list[int] | None = None  # line of each row in the file (None after subsampling)


def read_split(path: str) -> Split:
    """Read and validate one `sequence,label` (or PAIR_COLUMNS then `label`) CSV."""
    if not os.path.isfile(path):
        raise GUEDataError(f"{path}: missing split file")
    with open(path, newline="", encoding="utf-8-sig") as f:  # a leading byte-order mark is not part of the header
        reader = csv.reader(f)
        try:
            return _read_rows(path, reader)
        except UnicodeDecodeError:
            raise GUEDataError(f"{path}: bytes that are not UTF-8 text after line {reader.line_num}; expected a UTF-8 CSV") from None
        except csv.Error as e:
            raise GUEDataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def _read_rows(path: str, reader) -> Split:
    header = next(reader, None)
    if header is None:
        raise GUEDataError(f"{path}:1: empty file, expected the header 'sequence,label'")
    header = [h.strip() for h in header]
    if len(header) not in (2, 3) or header[-1] != "label" or (len(header) == 3 and tuple(header[:2]) not in PAIR_COLUMNS):
        raise GUEDataError(
            f"{path}:1: header {','.join(header)!r}; expected 'sequence,label', or for sequence pairs "
            + " or ".join(f"'{a},{b},label'" for a, b in PAIR_COLUMNS)
        )
    columns = len(header) - 1
    sequences: list[list[str]] = [[] for _ in range(columns)]
    labels, lines, non_acgt = [], [], Counter()
    for row in reader:
        line = reader.line_num  # the line the row ends on, in the file as given (blank lines counted)
        if not row:
            continue
        if len(row) != len(header):
            raise GUEDataError(f"{path}:{line}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
        try:
            labels.append(int(row[-1]))
        except ValueError:
            raise GUEDataError(f"{path}:{line}: label {row[-1]!r} is not an integer") from None
        for c in range(columns):
            seq = row[c].strip()
            if not seq:
                raise GUEDataError(f"{path}:{line}: empty sequence in column {header[c]!r}")
            non_acgt.update(ch for ch in seq.upper() if ch not in "ACGT")
            sequences[c].append(seq)
        lines.append(line)
    if not labels:
        raise GUEDataError(f"{path}: no data rows after the header")
    return Split(path, sequences, labels, non_acgt, lines)


def read_task(data_path: str) -> dict[str, Split]:
    """Read train/dev/test of one task and check the labels across splits."""
    splits = {s: read_split(os.path.join(data_path, f"{s}.csv")) for s in SPLITS}
    train_labels = set(splits["train"].labels)
    if len(train_labels) < 2:
        raise GUEDataError(f"{splits['train'].path}: only one class ({train_labels.pop()}) in the training split")
    if min(train_labels) != 0 or max(train_labels) != len(train_labels) - 1:
        raise GUEDataError(
            f"{splits['train'].path}: labels {sorted(train_labels)}; expected 0..num_labels-1 with every class present"
        )
    for name in ("dev", "test"):
        split = splits[name]
        for line, label in zip(split.lines or range(2, len(split.labels) + 2), split.labels):
            if label not in train_labels:
                raise GUEDataError(f"{split.path}:{line}: label {label} never appears in train")
    if len({len(split.sequences) for split in splits.values()}) != 1:
        raise GUEDataError(f"{data_path}: the splits differ in their number of sequence columns")
    return splits


def describe_non_acgt(split: Split) -> str | None:
    if not split.non_acgt:
        return None
    detail = ", ".join(f"{ch!r}: {n}" for ch, n in split.non_acgt.most_common())
    return f"{split.path}: {sum(split.non_acgt.values())} non-ACGT characters ({detail}); kept, the tokenizer reads them"


def reverse_complement_split(split: Split) -> Split:
    return Split(split.path, [[reverse_complement(s.upper()) for s in col] for col in split.sequences], split.labels, split.non_acgt)


def classification_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_score, recall_score

    return {
        "matthews_correlation": float(matthews_corrcoef(labels, predictions)),
        "f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "precision": float(precision_score(labels, predictions, average="macro", zero_division=0)),
        "recall": float(recall_score(labels, predictions, average="macro", zero_division=0)),
    }


def write_summary(results: list[dict], output_dir: str) -> str:
    """results: [{"task", "seed", "test_matthews_correlation", ...}] -> summary.csv, summary.md, summary.png.

    Returns the Markdown table. MCC is reported x100 like the paper (F1 x100 for covid); a run of
    another label type names its own metric in "headline_metric" (e.g. "test_spearman").
    """
    by_task: dict[str, list[float]] = {}
    metric_of: dict[str, str] = {}
    for r in results:
        metric = "test_f1" if paper_key(r["task"]) == "covid_f1" else r.get("headline_metric", "test_matthews_correlation")
        metric_of[r["task"]] = metric.removeprefix("test_")
        by_task.setdefault(r["task"], []).append(100 * r[metric])
    rows = []
    for task, scores in sorted(by_task.items()):
        paper = paper_score(task) if metric_of[task] in ("matthews_correlation", "f1") else None
        rows.append({
            "task": task,
            "metric": metric_of[task],
            "seeds": len(scores),
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores)),
            "paper_dnabert2": paper,
        })
    with open(os.path.join(output_dir, "summary.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| task | metric | seeds | ours (x100, mean ± std) | paper DNABERT-2 |", "|---|---|---:|---:|---:|"]
    for r in rows:
        paper = "" if r["paper_dnabert2"] is None else f"{r['paper_dnabert2']:.2f}"
        lines.append(f"| {r['task']} | {r['metric']} | {r['seeds']} | {r['mean']:.2f} ± {r['std']:.2f} | {paper} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(table)
    _bar_chart(rows, os.path.join(output_dir, "summary.png"))
    return table


def _bar_chart(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.5))
    ax.bar(x - 0.2, [r["mean"] for r in rows], 0.4, yerr=[r["std"] for r in rows], label="ours")
    ax.bar(x + 0.2, [r["paper_dnabert2"] or 0 for r in rows], 0.4, label="paper DNABERT-2")
    ax.set_xticks(x, [r["task"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("test score x100 (" + ", ".join(sorted({r["metric"] for r in rows})) + ")")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
