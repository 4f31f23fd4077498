"""Fine-tune DNABERT-2 on GUE tasks (sequence classification) with the transformers Trainer.

    python finetune_gue.py                      # the demo: this repo's model on a bundled GUE sample
    python finetune_gue.py --task tf/0 --gue_root GUE --model_name_or_path MODEL --output_dir out/tf0
    python finetune_gue.py --tasks all --gue_root GUE --seeds 1 2 3 --output_dir out/gue

The original script's argument names work (--model_name_or_path, --data_path,
--model_max_length, --use_lora, --lora_r, --lora_alpha, --lora_dropout, --lora_target_modules,
--run_name, --output_dir), and so does every TrainingArguments flag. `--task NAME` fills in the
paper's per-task settings (gue.py); a flag given explicitly always wins. Best checkpoint by dev
MCC, evaluated on test; writes test_results.json, test_predictions.csv and a Hub folder.
A non-empty --output_dir is refused unless --overwrite is given; every numeric flag is
range-checked before any data is read; three-column CSVs are sequence pairs only under the
column names in gue.PAIR_COLUMNS.

Your own labels (`--data_path FOLDER`): the label type is detected from train.csv (task_types.py:
classification with integer or string labels, regression, multi-label, per-base) or forced with
--task_type; the best checkpoint is chosen by the type's metric (--metric_for_best_model wins), and
task.json beside the model tells predict.py what the outputs mean (and the tuned multi-label
thresholds).
"""

import csv
import json
import os
import random
import sys
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from dnabert2.chunked_output import atomic_write
from dnabert2.cli import (
    REPO_ROOT, OutputArguments, ScriptParser, above, at_least, load_pretrained, no_empty_folder_left, refuse_nonempty_folder, require_model, run, within,
)

from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.gue import (
    LEARNING_RATE_BY_WIDTH, Split, classification_metrics, default_learning_rate, describe_non_acgt,
    discover_tasks,
    reverse_complement_split, task_preset, write_summary,
)
from dnabert2.embedding import token_spans
from dnabert2.modeling_bert import IGNORE_INDEX, BertForSequenceClassification, BertForTokenClassification
from dnabert2.per_base import labels_to_tokens, tokens_to_bases
from dnabert2.prediction import output_columns
from dnabert2.task_types import (
    BEST_METRIC, HEADLINE_METRIC, REGRESSION_METRICS, TASK_TYPES, TaskSpec, base_metrics, multilabel_metrics,
    read_labeled_task, regression_metrics, tune_thresholds,
)
from dnabert2.chunked_output import write_table
from dnabert2.training_callbacks import CSVLogCallback, TokenizerFilesCallback, end_distributed, save_tokenizer

DEMO_TASK = "prom/prom_core_all"
DEMO_GUE_ROOT = os.path.join(REPO_ROOT, "data", "gue_sample")
GLOBAL_BATCH = 32  # the paper: 8 per device on 4 GPUs


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default=REPO_ROOT, metadata={"help": "checkpoint folder or Hub id"})
    use_lora: bool = field(default=False)
    lora_r: int = field(default=8, metadata=at_least(1))
    lora_alpha: int = field(default=32, metadata=above(0))
    lora_dropout: float = field(default=0.05, metadata=within(0, 1, high_open=True))
    lora_target_modules: str = field(default="Wqkv,wo,gated_layers,dense", metadata={"help": "comma-separated"})
    merge_lora: bool = field(default=True, metadata={"help": "also write the merged model to OUTPUT_DIR/merged"})
    attn_implementation: str = field(default="sdpa")
    classifier_pooling: str | None = field(default=None, metadata={"help": "pooler (default) or mean"})


@dataclass
class DataArguments:
    data_path: str | None = field(default=None, metadata={"help": "folder with train.csv, dev.csv, test.csv"})
    task: str | None = field(default=None, metadata={"help": "GUE task name, e.g. tf/0, EMP/H3, prom/prom_core_all"})
    tasks: list[str] = field(default_factory=list, metadata={"help": "'all' or several task names (whole benchmark)"})
    gue_root: str | None = field(default=None, metadata={"help": "folder that holds the GUE task folders"})
    seeds: list[int] = field(default_factory=list, metadata=at_least(0, "run each task once per seed"))
    model_max_length: int = field(default=512, metadata=at_least(3, "tokens, [CLS] and [SEP] included (so at least one sequence token)"))
    rc_tta: bool = field(default=False, metadata={"help": "also score test with reverse-complement averaging"})
    max_train_samples: int = field(default=0, metadata=at_least(0, "train on a random subset of this size (0: all)"))
    max_eval_samples: int = field(default=0, metadata=at_least(0, "select checkpoints on a random dev subset of this size (0: all); test is always whole"))
    task_type: str = field(default="auto", metadata={"help": "label type (auto: detected from train.csv)", "choices": list(TASK_TYPES)})


@dataclass
class GUETrainingArguments(TrainingArguments):
    """TrainingArguments with the paper's common fine-tuning settings as defaults."""

    output_dir: str = field(default="outputs/gue")
    learning_rate: float = field(default=LEARNING_RATE_BY_WIDTH[0][1], metadata={
        "help": "default: by model width (gue.LEARNING_RATE_BY_WIDTH: the paper's 3e-5 for hidden >= 768, more below)"})
    per_device_train_batch_size: int = field(default=8)
    per_device_eval_batch_size: int = field(default=64)
    num_train_epochs: float = field(default=3.0)
    warmup_steps: float = field(default=50)
    weight_decay: float = field(default=0.01)
    eval_strategy: str = field(default="steps")
    eval_steps: float = field(default=200)
    save_strategy: str = field(default="steps")
    save_steps: float = field(default=200)
    save_total_limit: int = field(default=2)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str = field(default="matthews_correlation")
    greater_is_better: bool = field(default=True)
    logging_steps: float = field(default=50)
    report_to: str = field(default="none")
    dataloader_pin_memory: bool = field(default=False)


def explicit_flags(argv: list[str]) -> set[str]:
    return {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}


def model_learning_rate(model_name_or_path: str) -> float:
    """The default fine-tuning learning rate for this checkpoint's width, said once on stderr."""
    from dnabert2.configuration_bert import BertConfig

    hidden_size = BertConfig.from_pretrained(model_name_or_path).hidden_size
    learning_rate = default_learning_rate(hidden_size)
    print(f"learning rate {learning_rate:g} for a model of hidden size {hidden_size} "
          "(gue.LEARNING_RATE_BY_WIDTH; --learning_rate overrides)", file=sys.stderr)
    return learning_rate


def apply_preset(task: str, training_args, data_args, explicit: set[str]):
    """Fill in the paper's per-task settings wherever the user gave no flag."""
    preset = task_preset(task)
    updates = {
        name: getattr(preset, name)
        for name in ("num_train_epochs", "max_steps", "warmup_steps", "per_device_train_batch_size")
        if name not in explicit
    }
    if "model_max_length" not in explicit:
        data_args = replace(data_args, model_max_length=preset.model_max_length)
    return replace(training_args, **updates), data_args


def subsample(split: Split, n: int) -> Split:
    """A fixed random subset (seed 0, the same for every run seed), in file order."""
    keep = sorted(random.Random(0).sample(range(len(split.labels)), n))
    return Split(split.path, [[col[i] for i in keep] for col in split.sequences], [split.labels[i] for i in keep], split.non_acgt)


def to_dataset(split: Split, tokenizer, max_length: int, task_type: str = "classification"):
    from datasets import Dataset

    if task_type == "token":
        return _token_dataset(split, tokenizer, max_length)
    columns = {f"sequence_{i}": col for i, col in enumerate(split.sequences)}
    dataset = Dataset.from_dict({**columns, "labels": split.labels})

    def tokenize(batch):
        texts = [batch[f"sequence_{i}"] for i in range(len(split.sequences))]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    return dataset.map(tokenize, batched=True, remove_columns=list(columns))


def _token_dataset(split: Split, tokenizer, max_length: int):
    """Per-token labels from per-base labels (per_base.py rule); [CLS]/[SEP] carry IGNORE_INDEX."""
    from datasets import Dataset

    all_ids, spans = token_spans(tokenizer, split.sequences[0])
    rows = {"input_ids": [], "attention_mask": [], "token_type_ids": [], "labels": []}
    for ids, span, base in zip(all_ids, spans, split.labels):
        keep = max_length - 2  # truncation, as for the sequence-level tasks
        tokens = labels_to_tokens(base, span[:keep]).tolist()
        ids = [tokenizer.cls_token_id, *ids[:keep], tokenizer.sep_token_id]
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
        rows["token_type_ids"].append([0] * len(ids))
        rows["labels"].append([IGNORE_INDEX, *tokens, IGNORE_INDEX])
    return Dataset.from_dict(rows)


def per_base_probs(logits: np.ndarray, split: Split, tokenizer, max_length: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(examples, L, C) token logits in split order -> per example (bases, C) probs and (bases,) labels,
    over the bases that the (possibly truncated) tokens cover."""
    _, spans = token_spans(tokenizer, split.sequences[0])
    probs, labels = [], []
    for row, (span, base) in enumerate(zip(spans, split.labels)):
        span = span[: max_length - 2]
        token_logits = np.asarray(logits[row, 1 : len(span) + 1], dtype=np.float32)  # (tokens, C)
        covered = int(span[-1, 1]) if len(span) else 0
        p = torch.softmax(torch.from_numpy(token_logits), -1).numpy()
        probs.append(tokens_to_bases(p, span, covered))
        labels.append(np.asarray(base[:covered]))
    return probs, labels


def predicted_classes(logits, labels):
    """preprocess_logits_for_metrics of sequence classification: the predicted class id per example
    (batch,), so evaluation never keeps a stack of logits or hidden states."""
    return logits.argmax(dim=-1)


def compute_metrics(eval_pred):
    return classification_metrics(np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids))


def metrics_for(spec: TaskSpec, split: Split, tokenizer, max_length: int):
    """(compute_metrics, preprocess_logits_for_metrics) of a label type, on the dev split `split`."""
    if spec.task_type == "classification":
        return compute_metrics, predicted_classes
    if spec.task_type == "regression":
        return (lambda p: regression_metrics(np.asarray(p.predictions), np.asarray(p.label_ids), spec.label_names)), None
    if spec.task_type == "multilabel":
        def multilabel(p):
            probs = torch.sigmoid(torch.from_numpy(np.asarray(p.predictions, dtype=np.float32))).numpy()
            return multilabel_metrics(probs, np.asarray(p.label_ids), spec.label_names, [0.5] * len(spec.label_names))
        return multilabel, None

    def token(p):
        probs, labels = per_base_probs(np.asarray(p.predictions), split, tokenizer, max_length)
        return base_metrics(np.concatenate(probs), np.concatenate(labels))
    return token, None


def build_model(model_args: ModelArguments, spec: TaskSpec | int):
    if isinstance(spec, int):  # a number of classes (GUE)
        spec = TaskSpec("classification", [str(i) for i in range(spec)])
    overrides = {"classifier_pooling": model_args.classifier_pooling} if model_args.classifier_pooling else {}
    cls = BertForTokenClassification if spec.task_type == "token" else BertForSequenceClassification
    model = load_pretrained(
        cls, model_args.model_name_or_path, attn_implementation=model_args.attn_implementation, **spec.config_fields(), **overrides
    )
    if not model_args.use_lora:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    targets = [m.strip() for m in model_args.lora_target_modules.split(",") if m.strip()]
    present = {name.split(".")[-1] for name, _ in model.named_modules()}
    unknown = [t for t in targets if t not in present]
    if unknown:
        raise ValueError(f"--lora_target_modules {unknown} do not exist in this model; it has e.g. Wqkv, wo, gated_layers, dense")
    # The head (pooler + classifier) is trained in full and saved with the adapters: the pooler is
    # not in the pretrained checkpoint, so a fresh one would differ at every load.
    head = ["classifier"] + (["pooler"] if getattr(model.bert, "pooler", None) is not None else [])
    modules = [
        name for name, _ in model.named_modules()
        if name.split(".")[-1] in targets and not any(name.startswith(f"bert.{h}") or name == h for h in head)
    ]
    config = LoraConfig(
        task_type=TaskType.TOKEN_CLS if spec.task_type == "token" else TaskType.SEQ_CLS, r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout, target_modules=modules, modules_to_save=head,
    )
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    return model


def predict_logits(trainer: Trainer, dataset) -> np.ndarray:
    """(examples, num_labels) test logits; the metric hooks are bypassed to keep the logits."""
    hooks = trainer.preprocess_logits_for_metrics, trainer.compute_metrics
    trainer.preprocess_logits_for_metrics = trainer.compute_metrics = None
    try:
        return np.asarray(trainer.predict(dataset, metric_key_prefix="test").predictions)
    finally:
        trainer.preprocess_logits_for_metrics, trainer.compute_metrics = hooks


def write_predictions(path: str, split: Split, logits: np.ndarray, rc_logits: np.ndarray | None) -> None:
    probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = [f"sequence_{i}" for i in range(len(split.sequences))] + ["label", "prediction"]
        header += [f"prob_{c}" for c in range(probs.shape[1])]
        if rc_logits is not None:
            header.append("rc_tta_prediction")
        writer.writerow(header)
        for row in range(len(split.labels)):
            values = [col[row] for col in split.sequences] + [split.labels[row], int(logits[row].argmax())]
            values += [f"{p:.6f}" for p in probs[row]]
            if rc_logits is not None:
                values.append(int(((logits[row] + rc_logits[row]) / 2).argmax()))
            writer.writerow(values)


def best_metric_args(spec: TaskSpec, training_args, explicit: set[str]):
    """metric_for_best_model / greater_is_better of the label type, unless given as flags."""
    metric, greater = BEST_METRIC[spec.task_type]
    if "metric_for_best_model" in explicit:
        metric = training_args.metric_for_best_model.removeprefix("eval_")
        if spec.task_type == "regression" and metric not in REGRESSION_METRICS:
            raise ValueError(f"--metric_for_best_model {metric!r} for regression; expected one of {REGRESSION_METRICS}")
        greater = metric != "mse"
    if "greater_is_better" in explicit:
        greater = training_args.greater_is_better
    return replace(training_args, metric_for_best_model=metric, greater_is_better=greater)


def run_task(model_args: ModelArguments, data_args: DataArguments, training_args, explicit: set[str] = frozenset()) -> dict:
    """Fine-tune on one task with one seed; returns the test metrics."""
    spec, splits = read_labeled_task(data_args.data_path, data_args.task_type)
    spec.model_max_length = data_args.model_max_length
    if spec.task_type == "token" and data_args.rc_tta:
        raise ValueError("--rc_tta with --task_type token: use predict.py --rc_tta, which flips per-base outputs back")
    print(f"task type: {spec.task_type}; outputs: {', '.join(spec.label_names)}")
    training_args = best_metric_args(spec, training_args, explicit)
    if 0 < data_args.max_train_samples < len(splits["train"].labels):
        splits["train"] = subsample(splits["train"], data_args.max_train_samples)
    if 0 < data_args.max_eval_samples < len(splits["dev"].labels):
        splits["dev"] = subsample(splits["dev"], data_args.max_eval_samples)
    for split in splits.values():
        if note := describe_non_acgt(split):
            print(note)
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    max_length = data_args.model_max_length
    datasets = {name: to_dataset(split, tokenizer, max_length, spec.task_type) for name, split in splits.items()}
    model = build_model(model_args, spec)
    spec.classifier_pooling = model.config.classifier_pooling
    metric_fn, preprocess = metrics_for(spec, splits["dev"], tokenizer, max_length)
    collator = DataCollatorForTokenClassification(tokenizer) if spec.task_type == "token" else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["dev"],
        data_collator=collator,
        compute_metrics=metric_fn,
        preprocess_logits_for_metrics=preprocess,
        callbacks=[TokenizerFilesCallback(tokenizer), CSVLogCallback(os.path.join(training_args.output_dir, "log.csv"))],
    )
    trainer.train()

    logits = predict_logits(trainer, datasets["test"])
    rc_logits = None
    if data_args.rc_tta:
        rc_split = reverse_complement_split(splits["test"])
        rc_logits = predict_logits(trainer, to_dataset(rc_split, tokenizer, max_length, spec.task_type))
    if spec.task_type == "multilabel":  # per-label thresholds tuned on dev, saved in task.json
        dev_logits = predict_logits(trainer, datasets["dev"])
        dev_probs = torch.sigmoid(torch.from_numpy(dev_logits.astype(np.float32))).numpy()
        spec.thresholds = tune_thresholds(dev_probs, np.asarray(splits["dev"].labels))
    metrics = test_metrics(spec, splits["test"], logits, rc_logits, tokenizer, max_length)
    metrics["task_type"] = spec.task_type
    metrics["best_model_checkpoint"] = trainer.state.best_model_checkpoint
    trainer.save_metrics("test", metrics)
    if trainer.is_world_process_zero():
        path = os.path.join(training_args.output_dir, "test_predictions.csv")
        if spec.task_type == "classification" and spec.label_names == [str(i) for i in range(len(spec.label_names))]:
            atomic_write(path, lambda tmp: write_predictions(tmp, splits["test"], logits, rc_logits))  # the GUE format
        else:
            write_typed_predictions(path, spec, splits["test"], logits, rc_logits, tokenizer, max_length)  # atomic (write_table)
        save_final_model(trainer, tokenizer, model_args, training_args.output_dir, spec)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return metrics


def typed_logits(spec: TaskSpec, split: Split, logits: np.ndarray, tokenizer, max_length: int) -> list[np.ndarray]:
    """Trainer logits -> per example what Predictor.logits returns: (C,), or (bases, C) for token tasks."""
    if spec.task_type != "token":
        return list(np.asarray(logits, dtype=np.float32))
    _, spans = token_spans(tokenizer, split.sequences[0])
    out = []
    for row, span in enumerate(spans):
        span = span[: max_length - 2]
        token_logits = np.asarray(logits[row, 1 : len(span) + 1], dtype=np.float32)
        out.append(tokens_to_bases(token_logits, span, int(span[-1, 1]) if len(span) else 0))
    return out


def test_metrics(spec: TaskSpec, split: Split, logits, rc_logits, tokenizer, max_length: int) -> dict:
    labels = split.labels
    variants = [("test", logits)] + ([("test_rc_tta", (logits + rc_logits) / 2)] if rc_logits is not None else [])
    metrics = {}
    for prefix, values in variants:
        if spec.task_type == "classification":
            m = classification_metrics(np.asarray(values).argmax(-1), np.asarray(labels))
        elif spec.task_type == "regression":
            m = regression_metrics(values, np.asarray(labels), spec.label_names)
        elif spec.task_type == "multilabel":
            probs = torch.sigmoid(torch.from_numpy(np.asarray(values, dtype=np.float32))).numpy()
            m = multilabel_metrics(probs, np.asarray(labels), spec.label_names, spec.thresholds)
        else:
            probs, base_labels = per_base_probs(values, split, tokenizer, max_length)
            m = base_metrics(np.concatenate(probs), np.concatenate(base_labels))
        metrics.update({f"{prefix}_{k}": v for k, v in m.items()})
    return metrics


def write_typed_predictions(path, spec: TaskSpec, split: Split, logits, rc_logits, tokenizer, max_length: int) -> None:
    """test_predictions.csv for non-GUE label types: sequence, true label(s), then predict.py's columns."""
    columns = {f"sequence_{i}": np.array(col) for i, col in enumerate(split.sequences)}
    labels = split.labels
    if spec.task_type == "classification":
        columns["label"] = np.array([spec.label_names[y] for y in labels])
    elif spec.task_type == "token":
        columns["label"] = np.array(["".join(map(str, y.tolist())) for y in labels])
    else:
        for k, name in enumerate(spec.label_names):
            columns[f"label_{name}"] = np.array([row[k] for row in labels], dtype=np.float64)
    columns.update(output_columns(spec, typed_logits(spec, split, logits, tokenizer, max_length), spec.thresholds))
    if rc_logits is not None:
        averaged = output_columns(spec, typed_logits(spec, split, (logits + rc_logits) / 2, tokenizer, max_length), spec.thresholds)
        columns.update({f"rc_tta_{k}": v for k, v in averaged.items()})
    write_table(path, columns)


def save_final_model(trainer: Trainer, tokenizer, model_args: ModelArguments, output_dir: str, spec: TaskSpec) -> None:
    trainer.save_model(output_dir)  # full model; with LoRA: the adapters (and the classifier) only
    save_tokenizer(tokenizer, output_dir)
    spec.save(output_dir)
    if model_args.use_lora and model_args.merge_lora:
        merged_dir = os.path.join(output_dir, "merged")
        trainer.model.merge_and_unload().save_pretrained(merged_dir)
        save_tokenizer(tokenizer, merged_dir)
        spec.save(merged_dir)


def resolve_runs(data_args: DataArguments, training_args, explicit: set[str]):
    """[(task name or None, data_args, training_args)] for every task x seed to run."""
    if not (data_args.data_path or data_args.task or data_args.tasks):  # the embedded demo
        data_args = replace(data_args, task=DEMO_TASK, gue_root=data_args.gue_root or DEMO_GUE_ROOT)
    if data_args.tasks:
        if not data_args.gue_root:
            raise ValueError("--tasks needs --gue_root")
        tasks = discover_tasks(data_args.gue_root) if data_args.tasks == ["all"] else data_args.tasks
    elif data_args.task:
        tasks = [data_args.task]
    else:
        tasks = [None]
    seeds = data_args.seeds or [training_args.seed]
    runs = []
    for task in tasks:
        task_data, task_training = data_args, training_args
        if task is not None:
            if not data_args.gue_root and not data_args.data_path:
                raise ValueError(f"--task {task} needs --gue_root (or --data_path)")
            path = data_args.data_path if data_args.data_path and not data_args.gue_root else os.path.join(data_args.gue_root, task)
            task_data = replace(data_args, data_path=path)
            task_training, task_data = apply_preset(task, training_args, task_data, explicit)
        for seed in seeds:
            output_dir = training_args.output_dir
            if len(tasks) > 1 or len(seeds) > 1:
                output_dir = os.path.join(output_dir, task or "task", f"seed_{seed}")
            run_name = training_args.run_name or f"{task or 'task'}-seed{seed}"
            runs.append((task, task_data, replace(task_training, seed=seed, output_dir=output_dir, run_name=run_name)))
    return runs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = ScriptParser((ModelArguments, DataArguments, GUETrainingArguments, OutputArguments), description=__doc__)
    model_args, data_args, training_args, out = parser.parse(argv)
    refuse_nonempty_folder(training_args.output_dir, out.overwrite, "output folder")
    require_model(model_args.model_name_or_path)
    explicit = explicit_flags(argv)
    if "learning_rate" not in explicit:
        training_args = replace(training_args, learning_rate=model_learning_rate(model_args.model_name_or_path))
    with no_empty_folder_left(training_args.output_dir):
        return run_all(model_args, data_args, training_args, explicit)


def run_all(model_args: ModelArguments, data_args: DataArguments, training_args, explicit: set[str]) -> int:
    if "gradient_accumulation_steps" not in explicit:  # keep the paper's global batch of 32
        per_step = training_args.per_device_train_batch_size * max(1, training_args.world_size)
        training_args = replace(training_args, gradient_accumulation_steps=max(1, GLOBAL_BATCH // per_step))
    results = []
    for task, task_data, task_training in resolve_runs(data_args, training_args, explicit):
        print(f"== {task or task_data.data_path} | seed {task_training.seed} | {task_training.output_dir}")
        metrics = run_task(model_args, task_data, task_training, explicit)
        headline = HEADLINE_METRIC[metrics["task_type"]]
        results.append({"task": task or task_data.data_path, "seed": task_training.seed, "headline_metric": f"test_{headline}", **metrics})
    if training_args.process_index == 0:
        os.makedirs(training_args.output_dir, exist_ok=True)
        atomic_write(os.path.join(training_args.output_dir, "all_runs.json"), lambda path: _dump(results, path))
        table = write_summary(results, training_args.output_dir)
        print("\nTest results (x100; the paper's DNABERT-2-117M for reference):\n" + table)
    end_distributed()
    return 0


def _dump(value, path: str) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


if __name__ == "__main__":
    run(main)
