"""Label types for fine-tuning on your own data: detection, validated reading, metrics, thresholds.

Lives here: `TaskSpec` (what a fine-tuned folder predicts, saved as `task.json` beside the model),
detecting the label type of a train CSV (classification with integer or string labels,
regression, multi-label, per-base), reading train/dev/test with errors that name file, line and
column, the per-type metrics, and tuning per-label multi-label thresholds on dev.
Not here: GUE presets and the integer-label GUE reader (gue.py, used as is for GUE-layout files),
the token <-> base mapping (per_base.py), the Trainer run (finetune_gue.py), inference
(prediction.py).

Detection rules (train.csv; `--task_type` forces one):
- the sequence column is `sequence` (or, in the GUE layout `seq[,seq2],label`, the columns before
  `label`); `id` and `name` columns are carried, never labels; every other column is a label column.
- one label column: a string of digits exactly as long as the sequence in every row -> token
  (per-base); all integers -> classification (the GUE reader); any value holding `;` ->
  multilabel (label names); all numbers -> regression; names mixed with integers -> the GUE
  reader, which names the first label that is not an integer (a typo, not a class); otherwise ->
  classification with string labels (sorted names become id2label).
- several label columns: all values 0/1 -> multilabel (one label per column); all numbers ->
  regression with one target per column.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from .gue import SPLITS, GUEDataError, Split, read_task

TASK_TYPES = ("auto", "classification", "regression", "multilabel", "token")
TASK_FILE = "task.json"  # beside config.json in every fine-tuned folder (also LoRA adapter folders)
LABEL_SEPARATOR = ";"  # between label names in a one-column multi-label file
CARRIED_COLUMNS = ("id", "name")  # never labels
DEFAULT_THRESHOLD = 0.5
# metric_for_best_model default, and whether greater is better, per task type
BEST_METRIC = {
    "classification": ("matthews_correlation", True),
    "regression": ("spearman", True),
    "multilabel": ("macro_auprc", True),
    "token": ("base_mcc", True),
}
# the metric of the summary table, per task type
HEADLINE_METRIC = {"classification": "matthews_correlation", "regression": "spearman",
                   "multilabel": "macro_auprc", "token": "base_mcc"}
REGRESSION_METRICS = ("pearson", "spearman", "r2", "mse")


@dataclass
class TaskSpec:
    """What a fine-tuned model predicts; saved as task.json and read back by predict.py."""

    task_type: str  # classification | regression | multilabel | token
    label_names: list[str]  # classes / regression targets / labels / per-base classes, by output index
    label_columns: list[str] = field(default_factory=list)
    thresholds: list[float] | None = None  # multilabel: per label, tuned on dev
    model_max_length: int | None = None  # tokens the model was fine-tuned on ([CLS] and [SEP] included)
    classifier_pooling: str | None = None  # of the fine-tuned head; rebuilds it on a base for LoRA adapters

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, TASK_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, os.path.join(folder, TASK_FILE))

    @classmethod
    def load(cls, folder: str) -> TaskSpec | None:
        path = os.path.join(folder, TASK_FILE)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return cls(**json.load(f))

    def config_fields(self) -> dict:
        """num_labels, id2label, label2id and problem_type for the model config."""
        problem = {"classification": "single_label_classification", "regression": "regression",
                   "multilabel": "multi_label_classification", "token": None}[self.task_type]
        fields = {
            "num_labels": len(self.label_names),
            "id2label": dict(enumerate(self.label_names)),
            "label2id": {name: i for i, name in enumerate(self.label_names)},
        }
        if problem:
            fields["problem_type"] = problem
        if self.classifier_pooling:
            fields["classifier_pooling"] = self.classifier_pooling
        return fields


# --- reading ---------------------------------------------------------------------------------

def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if not os.path.isfile(path):
        raise GUEDataError(f"{path}: missing split file")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise GUEDataError(f"{path}:1: empty file, expected a header with a 'sequence' column")
        header = [h.strip() for h in header]
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise GUEDataError(f"{path}:{line}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
            rows.append((line, row))
    if not rows:
        raise GUEDataError(f"{path}: no data rows after the header")
    return header, rows


def split_columns(path: str, header: list[str]) -> tuple[list[str], list[str]]:
    """(sequence columns, label columns) of a header."""
    if "sequence" in header:
        sequences = ["sequence"]
    elif len(header) in (2, 3) and header[-1] == "label":  # the GUE layout
        sequences = header[:-1]
    else:
        raise GUEDataError(f"{path}:1: header {','.join(header)!r} has no 'sequence' column")
    labels = [h for h in header if h not in sequences and h not in CARRIED_COLUMNS]
    if not labels:
        raise GUEDataError(f"{path}:1: header {','.join(header)!r} has no label column (any column but sequence, id, name)")
    return sequences, labels


def _is_int(v: str) -> bool:
    try:
        int(v)
        return True
    except ValueError:
        return False


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def detect_task_type(path: str) -> str:
    """The label type of a train CSV (module docstring rules)."""
    header, rows = _read_rows(path)
    seq_cols, label_cols = split_columns(path, header)
    index = {h: i for i, h in enumerate(header)}
    values = [[row[index[c]].strip() for c in label_cols] for _, row in rows]
    if len(label_cols) == 1:
        first = [v[0] for v in values]
        seqs = [row[index[seq_cols[0]]].strip() for _, row in rows]
        if all(v.isdigit() and len(v) == len(s) for v, s in zip(first, seqs)) and any(len(v) > 1 for v in first):
            return "token"
        if all(_is_int(v) for v in first):
            return "classification"
        if any(LABEL_SEPARATOR in v for v in first):
            return "multilabel"
        if all(_is_number(v) for v in first):
            return "regression"
        return "classification"
    flat = [v for row in values for v in row]
    if all(v in ("0", "1") for v in flat):
        return "multilabel"
    if all(_is_number(v) for v in flat):
        return "regression"
    return "regression"  # the reader names the first cell that is not a number


def _number(path: str, line: int, column: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise GUEDataError(f"{path}:{line}: column {column!r}: {value!r} is not a number (regression target)") from None
    if not math.isfinite(x):
        raise GUEDataError(f"{path}:{line}: column {column!r}: target {value!r} is not a finite number")
    return x


def read_labeled_task(data_path: str, task_type: str = "auto") -> tuple[TaskSpec, dict[str, Split]]:
    """Detect (or take) the label type and read train/dev/test; Split.labels hold per-type values.

    classification: int class ids; regression: [float] per target; multilabel: [0/1] per label;
    token: np.ndarray of per-base class ids (int8), as long as the sequence.
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type={task_type!r}; expected one of {TASK_TYPES}")
    train_path = os.path.join(data_path, "train.csv")
    if task_type == "auto":
        task_type = detect_task_type(train_path)
    header, _ = _read_rows(train_path)
    seq_cols, label_cols = split_columns(train_path, header)
    if task_type == "classification" and len(label_cols) == 1:
        _, rows = _read_rows(train_path)
        if any(_is_int(row[header.index(label_cols[0])].strip()) for _, row in rows):
            splits = read_task(data_path)  # the GUE reader and its checks, unchanged
            names = [str(i) for i in range(len(set(splits["train"].labels)))]
            return TaskSpec("classification", names, label_cols), splits
    if task_type in ("classification", "token") and len(label_cols) != 1:
        raise GUEDataError(f"{train_path}:1: {task_type} needs one label column, found {label_cols}")
    splits = {}
    names: list[str] | None = None
    for split in SPLITS:
        path = os.path.join(data_path, f"{split}.csv")
        h, rows = _read_rows(path)
        s_cols, l_cols = split_columns(path, h)
        if (s_cols, l_cols) != (seq_cols, label_cols):
            raise GUEDataError(
                f"{path}:1: sequence/label columns {s_cols}/{l_cols} differ from train.csv's {seq_cols}/{label_cols}"
            )
        if names is None:
            names = _label_names(task_type, path, h, rows, label_cols)
        splits[split] = _parse_split(task_type, path, h, rows, seq_cols, label_cols, names)
    return TaskSpec(task_type, names, label_cols), splits


def _label_names(task_type: str, path: str, header: list[str], rows, label_cols: list[str]) -> list[str]:
    """Output names, taken from train: classes, targets, labels or per-base classes."""
    col = header.index(label_cols[0])
    if task_type == "regression":
        return list(label_cols)
    if task_type == "classification":
        names = sorted({row[col].strip() for _, row in rows})
        if len(names) < 2:
            raise GUEDataError(f"{path}: only one class ({names[0]!r}) in the training split")
        return names
    if task_type == "multilabel":
        if len(label_cols) > 1:
            return list(label_cols)
        names = sorted({n.strip() for _, row in rows for n in row[col].split(LABEL_SEPARATOR) if n.strip()})
        if not names:
            raise GUEDataError(f"{path}: no label names in column {label_cols[0]!r}")
        return names
    top = 0  # token: classes 0..max digit seen in train
    for line, row in rows:
        value = row[col].strip()
        if not value.isdigit():
            raise GUEDataError(f"{path}:{line}: column {label_cols[0]!r}: per-base labels must be digits, got {value[:20]!r}")
        top = max(top, max(int(c) for c in value))
    return [str(i) for i in range(max(top + 1, 2))]


def _parse_split(task_type, path, header, rows, seq_cols, label_cols, names) -> Split:
    index = {h: i for i, h in enumerate(header)}
    sequences: list[list[str]] = [[] for _ in seq_cols]
    labels: list = []
    non_acgt: Counter = Counter()
    known = {n: i for i, n in enumerate(names)}
    for line, row in rows:
        for c, col in enumerate(seq_cols):
            seq = row[index[col]].strip()
            if not seq:
                raise GUEDataError(f"{path}:{line}: empty sequence in column {col!r}")
            non_acgt.update(ch for ch in seq.upper() if ch not in "ACGT")
            sequences[c].append(seq)
        values = [row[index[col]].strip() for col in label_cols]
        if task_type == "regression":
            labels.append([_number(path, line, col, v) for col, v in zip(label_cols, values)])
        elif task_type == "classification":
            if values[0] not in known:
                raise GUEDataError(
                    f"{path}:{line}: column {label_cols[0]!r}: label {values[0]!r} never appears in train "
                    f"(known: {', '.join(names)})"
                )
            labels.append(known[values[0]])
        elif task_type == "multilabel" and len(label_cols) > 1:
            for col, v in zip(label_cols, values):
                if v not in ("0", "1"):
                    raise GUEDataError(f"{path}:{line}: column {col!r}: {v!r}; a multi-label column holds 0 or 1")
            labels.append([float(v) for v in values])
        elif task_type == "multilabel":
            vector = [0.0] * len(names)
            for name in (n.strip() for n in values[0].split(LABEL_SEPARATOR)):
                if not name:
                    continue
                if name not in known:
                    raise GUEDataError(
                        f"{path}:{line}: column {label_cols[0]!r}: label name {name!r} never appears in train "
                        f"(known: {', '.join(names)})"
                    )
                vector[known[name]] = 1.0
            labels.append(vector)
        else:  # token
            v, seq = values[0], sequences[0][-1]
            if not v.isdigit() or len(v) != len(seq):
                raise GUEDataError(
                    f"{path}:{line}: column {label_cols[0]!r}: expected one digit per base ({len(seq)}), got "
                    f"{len(v)} characters {v[:20]!r}"
                )
            per_base = np.frombuffer(v.encode(), dtype=np.uint8) - ord("0")
            if per_base.max() >= len(names):
                raise GUEDataError(f"{path}:{line}: column {label_cols[0]!r}: per-base class {per_base.max()} never appears in train")
            labels.append(per_base.astype(np.int64))
    return Split(path, sequences, labels, non_acgt)


# --- metrics ---------------------------------------------------------------------------------

def regression_metrics(predictions: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, float]:
    """Pearson, Spearman, R2 and MSE, averaged over targets (and per target when there are several)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error, r2_score

    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(labels), -1)  # (n, targets)
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    per_target = []
    for k in range(labels.shape[1]):
        p, y = predictions[:, k], labels[:, k]
        constant = np.ptp(p) == 0 or np.ptp(y) == 0
        per_target.append({
            "pearson": 0.0 if constant else float(pearsonr(p, y)[0]),
            "spearman": 0.0 if constant else float(spearmanr(p, y)[0]),
            "r2": float(r2_score(y, p)),
            "mse": float(mean_squared_error(y, p)),
        })
    metrics = {m: float(np.mean([t[m] for t in per_target])) for m in REGRESSION_METRICS}
    if len(per_target) > 1:
        for name, t in zip(names, per_target):
            metrics.update({f"{m}_{name}": t[m] for m in REGRESSION_METRICS})
    return metrics


def multilabel_metrics(probs: np.ndarray, labels: np.ndarray, names: list[str], thresholds) -> dict[str, float]:
    """Micro/macro F1 at the thresholds; per-label and mean AUROC and AUPRC (labels with one class in
    this split have no AUROC/AUPRC and are left out of the means)."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(int)
    predicted = (probs >= np.asarray(thresholds)[None, :]).astype(int)
    metrics = {
        "micro_f1": float(f1_score(labels, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
    }
    aurocs, auprcs = [], []
    for k, name in enumerate(names):
        if labels[:, k].min() == labels[:, k].max():
            continue
        metrics[f"auroc_{name}"] = float(roc_auc_score(labels[:, k], probs[:, k]))
        metrics[f"auprc_{name}"] = float(average_precision_score(labels[:, k], probs[:, k]))
        aurocs.append(metrics[f"auroc_{name}"])
        auprcs.append(metrics[f"auprc_{name}"])
    metrics["macro_auroc"] = float(np.mean(aurocs)) if aurocs else float("nan")
    metrics["macro_auprc"] = float(np.mean(auprcs)) if auprcs else float("nan")
    return metrics


def tune_thresholds(probs: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per label, the threshold on a 0.01 grid that maximises F1 on these (dev) examples; 0.5 for a
    label without positives. Ties go to the threshold closest to 0.5."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    grid = grid[np.argsort(np.abs(grid - DEFAULT_THRESHOLD), kind="stable")]
    thresholds = []
    for k in range(labels.shape[1]):
        y = np.asarray(labels[:, k]).astype(int)
        if y.sum() == 0:
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        scores = [f1_score(y, (probs[:, k] >= t).astype(int), zero_division=0) for t in grid]
        thresholds.append(float(grid[int(np.argmax(scores))]))
    return thresholds


def base_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Base-level MCC, F1 and AUPRC: probs (bases, classes), labels (bases,).

    Two classes: F1 and AUPRC of class 1; more: macro F1 and the mean one-vs-rest AUPRC.
    """
    from sklearn.metrics import average_precision_score, f1_score, matthews_corrcoef

    predicted = probs.argmax(-1)
    classes = probs.shape[1]
    if classes == 2:
        f1 = f1_score(labels, predicted, zero_division=0)
        auprc = average_precision_score(labels, probs[:, 1]) if labels.max() > 0 else float("nan")
    else:
        f1 = f1_score(labels, predicted, average="macro", zero_division=0)
        present = [c for c in range(classes) if (labels == c).any()]
        auprc = float(np.mean([average_precision_score(labels == c, probs[:, c]) for c in present]))
    return {"base_mcc": float(matthews_corrcoef(labels, predicted)), "base_f1": float(f1), "base_auprc": float(auprc)}
