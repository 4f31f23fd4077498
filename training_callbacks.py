"""Trainer callbacks shared by pretrain.py and finetune_gue.py.

Lives here: complete Hub folders at every save (tokenizer files next to the weights and code),
CSV logging, a wall-clock budget, the end-of-run curve plot, and a clean end of a torchrun job.
Not here: data or models.
"""

import csv
import os
import time

import torch.distributed as dist
from transformers import TrainerCallback
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from dnabert2.dna_tokenizer import CLS, MASK, PAD, SEP, UNK, save_for_transformers


def end_distributed() -> None:
    """Under torchrun: wait for every rank, then tear the process group down.

    Without it a rank that finishes first can exit while its gloo threads are still live, and
    dies with "terminate called without an active exception" (SIGABRT) after a good run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        # A second barrier: while this thread waits in it (GIL released), the gloo worker thread frees
        # the first barrier's work and with it the tensors of the collectives before it, which needs
        # the GIL. Without it, dropping the last reference to the process group (DDP's Reducer, when
        # the trainer goes) can join that thread while it waits for the GIL held here: a hang at exit.
        dist.barrier()
        dist.destroy_process_group()


def save_tokenizer(tokenizer, output_dir: str) -> None:
    """Write the files of a loaded tokenizer (PreTrainedTokenizerFast) through
    dna_tokenizer.save_for_transformers, the one writer of tokenizer_config.json: transformers 4.x
    and 5.x both load the result, and its settings are those of a freshly trained tokenizer.
    transformers' "no limit" placeholder model_max_length is written as no limit.
    """
    expected = {"unk_token": UNK, "cls_token": CLS, "sep_token": SEP, "pad_token": PAD, "mask_token": MASK}
    found = {name: getattr(tokenizer, name, None) for name in expected}
    if found != expected or tokenizer.padding_side != "right" or tokenizer.truncation_side != "right":
        raise ValueError(
            f"save_tokenizer writes DNA tokenizers with special tokens {expected} and right padding and "
            f"truncation; this one has {found}, padding_side={tokenizer.padding_side!r}, "
            f"truncation_side={tokenizer.truncation_side!r}"
        )
    limit = tokenizer.model_max_length
    save_for_transformers(tokenizer.backend_tokenizer, output_dir, None if limit >= VERY_LARGE_INTEGER else limit)


class TokenizerFilesCallback(TrainerCallback):
    """Put the tokenizer files into every checkpoint folder, so each one is a loadable Hub folder."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            save_tokenizer(self.tokenizer, os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))


class CSVLogCallback(TrainerCallback):
    """Append every log entry (train and eval) to OUTPUT_DIR/log.csv, one row per entry."""

    def __init__(self, path: str):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        rows = [{"step": h.get("step"), **h} for h in state.log_history]
        fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k != "epoch", k))
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


class TimeBudgetCallback(TrainerCallback):
    """Stop training (and save) once `minutes` of wall time have passed."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.monotonic() - self.start > self.seconds:
            control.should_training_stop = True
            control.should_save = True
            control.should_evaluate = True


def plot_curves(log_history: list[dict], path: str, metrics: dict[str, str]) -> None:
    """Write a PNG with one panel per metric name in `metrics` ({log key: panel title})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in metrics.items() if any(key in h for h in log_history)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        points = [(h["step"], h[key]) for h in log_history if key in h]
        ax.plot(*zip(*points), marker="." if len(points) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
