"""MLM pretraining of DNABERT-2 on genomes with the transformers Trainer.

    python pretrain.py --model_config dnabert2-small --train_files data/genomes/*.fa.gz \
        --output_dir runs/small --max_steps 2000 --per_device_train_batch_size 32 --learning_rate 1e-3
    python pretrain.py --dataset_name corpus/*.parquet --sequence_column sequence ...   # or a Hub id / folder

Training data is FASTA files (--train_files) or one `datasets` source (--dataset_name, streamed;
dataset_records.py); both feed the same crop pipeline. FASTA record indexes are cached
(--index_cache_dir) so a restart does not read every input before training.

All TrainingArguments are available (bf16, gradient accumulation and checkpointing, FSDP /
DeepSpeed, push_to_hub, ...); torchrun / accelerate launch it on several processes. Data logic
lives in pretraining_data.py; see its docstring for how crops are drawn and held out.
A non-empty --output_dir is refused unless --overwrite is given or the run resumes
(--resume_from_checkpoint); every numeric flag is range-checked before anything is read.
"""

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments, set_seed

from dnabert2.cli import REPO_ROOT, OutputArguments, ScriptParser, at_least, load_pretrained, no_empty_folder_left, refuse_nonempty_folder, require_model, run, within

from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import load_tokenizer
from dnabert2.modeling_bert import IGNORE_INDEX, BertForMaskedLM
from dnabert2.genome_io import default_index_cache
from dnabert2.pretraining_data import FastaSource, GenomeCropStream, MLMCollator, RecordSource, heldout_examples
from dnabert2.training_callbacks import (
    CSVLogCallback, TimeBudgetCallback, TokenizerFilesCallback, end_distributed, plot_curves, save_tokenizer,
)


@dataclass
class ModelArguments:
    model_config: str = field(default="dnabert2-small", metadata={"help": f"preset {sorted(PRESETS)} or a config JSON path"})
    tokenizer: str = field(default=REPO_ROOT, metadata={"help": "folder with tokenizer.json and tokenizer_config.json"})
    init_from: str | None = field(default=None, metadata={"help": "continue from this checkpoint folder (weights and config)"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager, sdpa or triton (CUDA)"})


@dataclass
class DataArguments:
    train_files: list[str] = field(default_factory=list, metadata={"help": "FASTA / FASTA.gz / bgzip / text files"})
    eval_files: list[str] = field(default_factory=list, metadata={"help": "held-out files; default: each record's tail"})
    dataset_name: str | None = field(default=None, metadata={
        "help": "instead of --train_files: a `datasets` Hub id, a local folder (also save_to_disk), or "
                ".parquet/.json/.jsonl/.csv/.tsv/.txt files (a glob); read streaming"})
    dataset_config: str | None = field(default=None, metadata={"help": "configuration (subset) of --dataset_name"})
    dataset_split: str = field(default="train", metadata={"help": "split of --dataset_name to train on"})
    sequence_column: str | None = field(default=None, metadata={"help": "column of --dataset_name holding the DNA (required with it)"})
    eval_split: str | None = field(default=None, metadata={"help": "split of --dataset_name held out for eval; default: "
                                                                   "a hash-chosen --eval_fraction of its records"})
    eval_fraction: float = field(default=0.02, metadata=within(
        0, 1, "held out for eval: the tail of each FASTA record, or this share of a dataset's records", high_open=True))
    index_cache_dir: str = field(default_factory=default_index_cache, metadata={
        "help": "folder of cached record indexes of FASTA files and local datasets files (keyed by path, size, mtime); 'none': read every input at start"})
    min_bp: int = field(default=200, metadata=at_least(1, "shortest training crop"))
    max_bp: int = field(default=1000, metadata=at_least(1, "longest training crop (also the eval window)"))
    rc_prob: float = field(default=0.5, metadata=within(0, 1, "probability of reverse-complementing a crop"))
    max_n_fraction: float = field(default=0.1, metadata=within(0, 1, "skip crops with more N than this"))
    mlm_probability: float = field(default=0.15, metadata=within(0, 1, "fraction of tokens chosen for masking", low_open=True))
    max_eval_examples: int = field(default=512, metadata=at_least(1))
    eval_mask_seed: int = field(default=42, metadata={
        "help": "seed of the held-out set's masks, apart from --seed, so that runs of different seeds score the "
                "same positions (42: the shipped checkpoint's run)"})
    shuffle_buffer: int = field(default=4096, metadata=at_least(1, "crops held for shuffling"))
    sampling: str = field(default="length", metadata={
        "help": "share of each file (genome) in the crops: 'length' (by bp), 'genome' (equal per file) or "
                "alpha in [0, 1] (bp**alpha)"})


@dataclass
class RunArguments:
    max_train_minutes: float = field(default=0.0, metadata=at_least(0, "stop and save after this wall time (0: off)"))
    record_batches: bool = field(default=False, metadata={"help": "write a fingerprint of every batch per rank"})


def load_config(model_args: ModelArguments, vocab_size: int) -> BertConfig:
    spec = model_args.model_config
    if spec in PRESETS:
        fields = PRESETS[spec]
    elif spec.endswith(".json") and os.path.isfile(spec):
        with open(spec) as f:
            fields = json.load(f)
    else:
        raise ValueError(f"--model_config {spec!r} is neither a preset {sorted(PRESETS)} nor an existing .json file")
    fields = {k: v for k, v in fields.items() if k not in ("auto_map", "architectures", "model_type")}
    fields.setdefault("vocab_size", vocab_size)
    if fields["vocab_size"] != vocab_size:
        raise ValueError(f"config vocab_size={fields['vocab_size']} but the tokenizer has {vocab_size} tokens")
    return BertConfig(**fields, attn_implementation=model_args.attn_implementation)


def mlm_accuracy(eval_pred) -> dict:
    """Accuracy on the masked positions (predictions and labels are both (examples, L))."""
    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    masked = labels != IGNORE_INDEX
    return {"mlm_accuracy": float((predictions[masked] == labels[masked]).mean())}


def masked_token_predictions(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """preprocess_logits_for_metrics of MLM: the predicted token id at each masked position, as a
    (batch, L) grid, so evaluation never accumulates (positions, vocab) logits.

    With labels the model returns logits only for the labelled positions; put their argmax back
    into a (batch, L) grid (IGNORE_INDEX elsewhere) so that Trainer can concatenate and truncate per example.
    """
    predictions = torch.full_like(labels, IGNORE_INDEX)
    predictions[labels != IGNORE_INDEX] = logits.argmax(dim=-1)
    return predictions


class MLMTrainer(Trainer):
    """Trainer that logs the padding fraction and, optionally, a fingerprint of every batch."""

    def __init__(self, *args, collator: MLMCollator, record_batches: bool = False, **kwargs):
        super().__init__(*args, data_collator=collator, **kwargs)
        self.collator = collator
        self.record_path = None
        if record_batches:
            self.record_path = os.path.join(self.args.output_dir, f"batches_rank{self.args.process_index}.jsonl")

    def training_step(self, model, inputs, *args, **kwargs):
        loss = super().training_step(model, inputs, *args, **kwargs)
        if self.record_path:
            digest = hashlib.sha1(inputs["input_ids"].cpu().numpy().tobytes() + inputs["labels"].cpu().numpy().tobytes())
            os.makedirs(os.path.dirname(self.record_path), exist_ok=True)
            with open(self.record_path, "a") as f:
                f.write(json.dumps({"step": self.state.global_step + 1, "batch": digest.hexdigest(), "loss": float(loss)}) + "\n")
        return loss

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:
            logs["padding_fraction"] = round(self.collator.padding_fraction(), 4)
        super().log(logs, *args, **kwargs)


def sources(data_args: DataArguments, training_args: TrainingArguments) -> tuple[RecordSource, RecordSource]:
    """(training source, evaluation source): FASTA files or a `datasets` source (split by process under torchrun)."""
    cache = None if data_args.index_cache_dir.lower() == "none" else data_args.index_cache_dir
    if data_args.train_files:
        train: RecordSource = FastaSource(data_args.train_files, cache)
    else:
        from dnabert2.dataset_records import DatasetSource

        name, column, config = data_args.dataset_name, data_args.sequence_column, data_args.dataset_config
        world, rank = training_args.world_size, training_args.process_index
        split_source = functools.partial(DatasetSource, name, column, config, index_cache_dir=cache)
        train = split_source(data_args.dataset_split, rank=rank, world=world)
        if data_args.eval_split:
            return train, split_source(data_args.eval_split)
        if world > 1 and not data_args.eval_files:
            return train, split_source(data_args.dataset_split)
    if data_args.eval_files:
        return train, FastaSource(data_args.eval_files, cache)
    return train, train


def build(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments, run_args: RunArguments):
    """Validate the arguments and build (trainer, tokenizer)."""
    if bool(data_args.train_files) == bool(data_args.dataset_name):
        raise ValueError("give either --train_files (FASTA, FASTA.gz, bgzip or one-sequence-per-line files) or "
                         "--dataset_name (a `datasets` source), not " + ("both" if data_args.train_files else "neither"))
    if data_args.dataset_name and not data_args.sequence_column:
        raise ValueError(f"--dataset_name {data_args.dataset_name}: give --sequence_column (the column holding the DNA)")
    if data_args.eval_split and not data_args.dataset_name:
        raise ValueError(f"--eval_split {data_args.eval_split} needs --dataset_name")
    if data_args.eval_split and data_args.eval_files:
        raise ValueError("give --eval_split or --eval_files, not both")
    if data_args.min_bp > data_args.max_bp:
        raise ValueError(f"--min_bp {data_args.min_bp} is larger than --max_bp {data_args.max_bp}")
    if training_args.max_steps <= 0:
        raise ValueError("the training data is a stream: set --max_steps")
    for path in data_args.train_files + data_args.eval_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")

    require_model(model_args.tokenizer, "tokenizer.json", "tokenizer")
    tokenizer = load_tokenizer(model_args.tokenizer)
    if model_args.init_from:
        model = load_pretrained(BertForMaskedLM, model_args.init_from, attn_implementation=model_args.attn_implementation)
        if model.config.vocab_size != len(tokenizer):
            raise ValueError(f"{model_args.init_from} has vocab_size {model.config.vocab_size}, the tokenizer {len(tokenizer)}")
    else:
        model = BertForMaskedLM(load_config(model_args, len(tokenizer)))

    source, eval_source = sources(data_args, training_args)
    separate_eval = bool(data_args.eval_files or data_args.eval_split)
    eval_fraction = 0.0 if separate_eval else data_args.eval_fraction
    spans = source.scan(eval_fraction, data_args.min_bp)
    if separate_eval:
        eval_spans = eval_source.scan(1.0, 0)
    elif eval_source is not source:  # a dataset split across processes: every process scores the same held-out set
        eval_spans = eval_source.scan(eval_fraction, data_args.min_bp)
    else:
        eval_spans = spans
    # Every process reads its own shard of the stream (batches of different processes differ in length,
    # which accelerate's default dispatching cannot concatenate).
    training_args.accelerator_config.dispatch_batches = False
    group = training_args.per_device_train_batch_size
    train_data = GenomeCropStream(
        spans, tokenizer, data_args.min_bp, data_args.max_bp, data_args.rc_prob, data_args.max_n_fraction,
        seed=training_args.seed, mlm_probability=data_args.mlm_probability, group_size=group,
        shuffle_buffer=data_args.shuffle_buffer, sampling=data_args.sampling, source=source,
    )
    eval_data = None
    if training_args.eval_strategy != "no" or training_args.do_eval:
        eval_data = heldout_examples(
            eval_spans, tokenizer, data_args.max_bp, data_args.max_eval_examples, data_args.eval_mask_seed,
            data_args.mlm_probability, data_args.max_n_fraction, source=eval_source,
        )

    callbacks = [TokenizerFilesCallback(tokenizer), CSVLogCallback(os.path.join(training_args.output_dir, "log.csv"))]
    if run_args.max_train_minutes > 0:
        callbacks.append(TimeBudgetCallback(run_args.max_train_minutes))
    trainer = MLMTrainer(
        model=model,
        args=training_args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        collator=MLMCollator(tokenizer),
        compute_metrics=mlm_accuracy,
        preprocess_logits_for_metrics=masked_token_predictions,
        callbacks=callbacks,
        processing_class=tokenizer,
        record_batches=run_args.record_batches,
    )
    if training_args.fsdp and not trainer.is_fsdp_enabled:
        # accelerate enables its FSDP plugin only for GPU-like distributed types: on CPU it would train unsharded.
        raise ValueError(
            "--fsdp was given but accelerate did not enable FSDP (distributed type "
            f"{trainer.accelerator.distributed_type.value}); FSDP needs GPUs (MULTI_GPU, NPU, XPU, ...), "
            "not --use_cpu. Drop --fsdp for CPU runs (DDP over gloo)"
        )
    return trainer, tokenizer


def main(argv=None) -> int:
    parser = ScriptParser((ModelArguments, DataArguments, TrainingArguments, RunArguments, OutputArguments), description=__doc__)
    model_args, data_args, training_args, run_args, out = parser.parse(argv)
    if not training_args.resume_from_checkpoint:  # resuming into a run folder is not overwriting it
        refuse_nonempty_folder(training_args.output_dir, out.overwrite, "run folder")
    with no_empty_folder_left(training_args.output_dir):
        return train(model_args, data_args, training_args, run_args)


def train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments, run_args: RunArguments) -> int:
    set_seed(training_args.seed)
    trainer, _ = build(model_args, data_args, training_args, run_args)
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)  # weights, config with auto_map, code files
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())  # every process takes part
    metrics["padding_fraction"] = trainer.collator.padding_fraction()
    trainer.save_metrics("all", metrics)
    if trainer.is_world_process_zero():
        save_tokenizer(trainer.processing_class, training_args.output_dir)
        plot_curves(
            trainer.state.log_history,
            os.path.join(training_args.output_dir, "curves.png"),
            {"loss": "train loss", "eval_loss": "eval loss", "eval_mlm_accuracy": "eval MLM accuracy"},
        )
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))
    if training_args.push_to_hub:
        trainer.push_to_hub()
    end_distributed()
    return 0


if __name__ == "__main__":
    run(main)
