"""Apply a fine-tuned DNABERT-2 folder to new sequences: loading, windows, strand averaging, output columns.

Lives here: `load_predictor` (a finetune_gue.py output folder, a LoRA `merged/` folder, or LoRA
adapters plus their base model), reading FASTA / CSV / TSV inputs with errors that name file and
line, running the model over sequences of any length, and turning its outputs into named columns
(`output_columns`), which finetune_gue.py also uses for its own test predictions.
Not here: the CLI (predict.py), label types and metrics (task_types.py), token <-> base mapping
(per_base.py), chunked resumable output (chunked_output.py).

Sequences longer than `max_length` tokens ([CLS] and [SEP] included) are cut into token windows
that overlap by an eighth of a window, each encoded as [CLS] window [SEP] (the windows and batches
are embedding.py's: window_plan, piece_batches, kept_parts; only the combination rule is ours).
Sequence-level tasks average the logits of the windows (every window has the same weight);
per-base tasks take each token's logits from the window in which it is farthest from an edge.
With rc_tta the logits of the reverse complement are averaged in (per-base: the reverse strand's
per-base logits are flipped back first).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .embedding import kept_parts, piece_batches, token_spans, window_plan
from .genome_io import GenomeFormatError, iter_records, reverse_complement
from .per_base import tokens_to_bases
from .task_types import DEFAULT_THRESHOLD, TaskSpec

logger = logging.getLogger(__name__)
DEFAULT_MAX_LENGTH = 512  # tokens per window when the folder does not say what it was tuned on
TABLE_INPUTS = {".csv": ",", ".tsv": "\t"}


@dataclass
class Record:
    line: int  # 1-based line of the record (FASTA header or CSV row)
    sequence: str
    carried: dict[str, str]  # columns passed through to the output


def read_inputs(path: str) -> Iterator[Record]:
    """Records of a FASTA / FASTA.gz / bgzip file (carried: id) or a CSV/TSV with a `sequence`
    column (carried: every other column)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TABLE_INPUTS:
        with open(path, newline="") as f:
            reader = csv.DictReader(f, delimiter=TABLE_INPUTS[suffix])
            if not reader.fieldnames or "sequence" not in reader.fieldnames:
                raise GenomeFormatError(f"{path}:1: header {reader.fieldnames}; expected a 'sequence' column")
            others = [c for c in reader.fieldnames if c != "sequence"]
            for line, row in enumerate(reader, start=2):
                if None in row or any(row[c] is None for c in reader.fieldnames):
                    raise GenomeFormatError(f"{path}:{line}: {len(row)} fields, expected {len(reader.fieldnames)}")
                seq = row["sequence"].strip()
                if not seq:
                    raise GenomeFormatError(f"{path}:{line}: empty sequence in column 'sequence'")
                yield Record(line, seq, {c: row[c] for c in others})
        return
    for record, seq in iter_records([path]):
        if not seq:
            raise GenomeFormatError(f"{path}:{record.line}: record {record.name!r} has no sequence")
        yield Record(record.line, seq, {"id": record.name})


def spec_from_config(config) -> TaskSpec:
    """The TaskSpec of a folder without task.json (fine-tuned before task.json existed)."""
    names = [config.id2label[i] for i in range(config.num_labels)]
    if "BertForTokenClassification" in (config.architectures or []):
        return TaskSpec("token", names)
    kind = {"regression": "regression", "multi_label_classification": "multilabel"}.get(config.problem_type, "classification")
    return TaskSpec(kind, names)


@dataclass
class Predictor:
    model: torch.nn.Module
    tokenizer: object
    spec: TaskSpec

    def logits(self, sequences: list[str], max_length: int, batch_size: int = 16, rc_tta: bool = False) -> list[np.ndarray]:
        """Per sequence: (num_labels,) logits, or (bases, num_labels) per-base logits for token tasks."""
        out = self._logits(sequences, max_length, batch_size)
        if not rc_tta:
            return out
        reverse = self._logits([reverse_complement(s.upper()) for s in sequences], max_length, batch_size)
        if self.spec.task_type == "token":
            reverse = [r[::-1] for r in reverse]  # base i of the reverse strand is base n-1-i of the input
        return [(f + r) / 2 for f, r in zip(out, reverse)]

    def _logits(self, sequences: list[str], max_length: int, batch_size: int) -> list[np.ndarray]:
        if max_length < 3:
            raise ValueError(f"max_length={max_length}; need at least 3 tokens ([CLS], one token, [SEP])")
        per_token = self.spec.task_type == "token"
        all_ids, spans = token_spans(self.tokenizer, sequences)
        width = max_length - 2
        pieces, plan = window_plan(all_ids, width, width // 8)
        outputs = self._run(pieces, batch_size, per_token)
        results = []
        for i, entries in enumerate(plan):
            if per_token:  # each token from the window where it is farthest from an edge
                tokens = np.concatenate(kept_parts(entries, outputs))  # (tokens, C)
                results.append(tokens_to_bases(tokens, spans[i], len(sequences[i])))  # (bases, C)
            else:  # every window weighs the same
                results.append(np.mean([outputs[p] for p, *_ in entries], axis=0))  # (C,)
        return results

    def _run(self, pieces: list[list[int]], batch_size: int, per_token: bool) -> list[np.ndarray]:
        """Model logits of token-id lists (no specials), batched by length; (C,) or (tokens, C) each."""
        device = next(self.model.parameters()).device
        results: list = [None] * len(pieces)
        for batch, ids, mask in piece_batches(self.tokenizer, pieces, batch_size):
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
            for row, i in enumerate(batch):
                results[i] = logits[row, 1 : len(pieces[i]) + 1].numpy() if per_token else logits[row].numpy()
        return results


def _softmax(x: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(x, dtype=np.float32)), dim=-1).numpy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def output_columns(spec: TaskSpec, logits: list[np.ndarray], thresholds: list[float] | None = None) -> dict[str, np.ndarray]:
    """Named output columns from per-sequence logits (Predictor.logits).

    classification: prob_<class> per class, predicted_label (a name from id2label), score (its prob);
    regression: pred_<target>; multilabel: prob_<label> per label and predicted_labels (the names at
    or above their threshold, ';'-joined); token: per_base_prediction (one class digit per base).
    """
    names = spec.label_names
    if spec.task_type == "token":
        return {"per_base_prediction": np.array(["".join(map(str, l.argmax(-1).tolist())) for l in logits])}
    stacked = np.stack(logits).astype(np.float32)  # (n, C)
    if spec.task_type == "regression":
        return {f"pred_{name}": stacked[:, k] for k, name in enumerate(names)}
    if spec.task_type == "classification":
        probs = _softmax(stacked)
        best = probs.argmax(-1)
        columns = {f"prob_{name}": probs[:, k] for k, name in enumerate(names)}
        columns["predicted_label"] = np.array([names[k] for k in best])
        columns["score"] = probs[np.arange(len(best)), best]
        return columns
    probs = _sigmoid(stacked)
    thresholds = thresholds if thresholds is not None else [DEFAULT_THRESHOLD] * len(names)
    columns = {f"prob_{name}": probs[:, k] for k, name in enumerate(names)}
    above = probs >= np.asarray(thresholds, dtype=np.float32)[None, :]
    columns["predicted_labels"] = np.array([";".join(n for n, a in zip(names, row) if a) for row in above])
    return columns


def load_predictor(path: str, base_model: str | None = None, dtype: str = "float32") -> Predictor:
    """A fine-tuned folder (full model or LoRA merged/), or a LoRA adapter folder plus its base."""
    from transformers.utils import logging as hf_logging

    from .configuration_bert import BertConfig
    from .dna_tokenizer import load_tokenizer
    from .modeling_bert import BertForSequenceClassification, BertForTokenClassification

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype={dtype!r}; expected float32, bfloat16 or float16")
    torch_dtype = getattr(torch, dtype)
    spec = TaskSpec.load(path)
    adapter_config = os.path.join(path, "adapter_config.json")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if os.path.isfile(adapter_config):
            if spec is None:
                raise FileNotFoundError(f"{path}: LoRA adapters without task.json; use the merged/ folder or re-run finetune_gue.py")
            with open(adapter_config) as f:
                base = base_model or json.load(f).get("base_model_name_or_path")
            if not base:
                raise ValueError(f"{adapter_config} names no base model; pass --base_model")
            from peft import PeftModel

            cls = BertForTokenClassification if spec.task_type == "token" else BertForSequenceClassification
            model = cls.from_pretrained(base, **spec.config_fields(), dtype=torch_dtype)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            config = BertConfig.from_pretrained(path)
            spec = spec or spec_from_config(config)
            cls = BertForTokenClassification if spec.task_type == "token" else BertForSequenceClassification
            model = cls.from_pretrained(path, dtype=torch_dtype)
    finally:
        hf_logging.set_verbosity(verbosity)
    return Predictor(model.eval(), load_tokenizer(path), spec)
