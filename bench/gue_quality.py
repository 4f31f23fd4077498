"""Does pretraining help? Fine-tune several starting points on real GUE tasks over a grid of
pooling modes, learning rates and seeds, next to a k-mer logistic regression, and print
mean ± std tables.

    python bench/gue_quality.py --gue_root GUE --output_dir runs/gue_quality \
        --models shipped=. random=random --poolings pooler mean --learning_rates 5e-4 --seeds 1 2 3
    python bench/gue_quality.py --gue_root GUE --output_dir runs/gue_quality --report_only true

Every run is finetune_gue.py (in this process) with the task's preset max length, a fixed random
training subset (`--max_train_samples`, the same for every seed and model), `--max_steps` steps of
batch 32, evaluation on a fixed dev subset every `--eval_steps` steps, the best checkpoint by dev
MCC scored on the whole test split. `random` means the shipped config with fresh weights (seed 0).
Results go to OUTPUT/results_SHARD.jsonl, one line per run; a rerun skips finished runs, and
`--shard i/n` splits the grid between processes. The k-mer baseline is sklearn's
LogisticRegression on 3- to 6-mer counts of the same training subset.

`--default_recipe true` runs the issue's target command instead: `finetune_gue.py --task TASK
--model_name_or_path MODEL` with no training flag but `--seed` (whole training split, the task
preset's epochs or steps, the pooling in the model's config, the learning rate for its width), and the
k-mer baseline on the whole training split. The subset flags (`--max_train_samples`, `--max_steps`,
`--poolings`, `--learning_rates`) are then ignored.
"""

import itertools
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser

from bench_paths import ROOT  # bench/bench_paths.py

DEV_VISIBLE_TASKS = ["tf/0", "tf/1", "mouse/0", "mouse/2", "mouse/4", "prom/prom_core_all", "prom/prom_core_notata",
                     "prom/prom_300_tata"]


@dataclass
class Args:
    gue_root: str = field(metadata={"help": "folder with the GUE task folders"})
    output_dir: str = field(default="runs/gue_quality")
    tasks: list[str] = field(default_factory=lambda: list(DEV_VISIBLE_TASKS))
    models: list[str] = field(default_factory=lambda: ["shipped=.", "random=random"],
                              metadata={"help": "NAME=FOLDER; FOLDER 'random' is the shipped config with fresh weights"})
    poolings: list[str] = field(default_factory=lambda: ["mean"])
    learning_rates: list[float] = field(default_factory=lambda: [5e-4])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    max_train_samples: int = field(default=2000)
    max_eval_samples: int = field(default=1000)
    max_steps: int = field(default=200)
    eval_steps: int = field(default=50)
    shard: str = field(default="0/1", metadata={"help": "i/n: run every n-th grid point starting at i"})
    default_recipe: bool = field(default=False, metadata={
        "help": "run finetune_gue.py with its defaults on the whole training split (the issue's target command)"})
    kmer: bool = field(default=True, metadata={"help": "also fit the k-mer baseline"})
    report_only: bool = field(default=False)
    curve: list[str] = field(default_factory=list, metadata={
        "help": "NAME=STEPS for each model that is a point of the pretraining-amount curve (random=0); with "
                "--curve_png, the report adds a table and a plot of test MCC against pretraining tokens"})
    curve_png: str = field(default="", metadata={"help": "where to write the curve plot"})
    tokens_per_step: float = field(default=3940.0, metadata={
        "help": "pretraining tokens per optimizer step (the shipped recipe: 19.7M tokens in 5,000 steps)"})


def kmer_baseline(data_path: str, max_train: int) -> float:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import matthews_corrcoef
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    from dnabert2.finetune_gue import subsample
    from dnabert2.gue import read_task

    splits = read_task(data_path)
    train = subsample(splits["train"], max_train) if 0 < max_train < len(splits["train"].labels) else splits["train"]
    model = make_pipeline(CountVectorizer(analyzer="char", ngram_range=(3, 6), lowercase=False), MaxAbsScaler(),
                          LogisticRegression(max_iter=2000, C=0.1))
    model.fit(train.sequences[0], train.labels)
    predictions = model.predict(splits["test"].sequences[0])
    return float(matthews_corrcoef(splits["test"].labels, predictions))


def random_init_folder(output_dir: str) -> str:
    import torch

    from dnabert2.configuration_bert import BertConfig
    from dnabert2.dna_tokenizer import load_tokenizer
    from dnabert2.modeling_bert import BertForMaskedLM
    from dnabert2.training_callbacks import save_tokenizer

    folder = os.path.join(output_dir, "random_init")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        torch.manual_seed(0)
        BertForMaskedLM(BertConfig.from_pretrained(str(ROOT))).save_pretrained(folder)
        save_tokenizer(load_tokenizer(str(ROOT)), folder)
    return folder


def read_results(output_dir: str) -> list[dict]:
    rows = []
    for path in sorted(Path(output_dir).glob("results_*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def run_key(row: dict) -> tuple:
    return row["model"], row["task"], row["pooling"], float(row["learning_rate"]), int(row["seed"])


def default_setting(folder: str) -> tuple[str, float]:
    """The pooling and learning rate that finetune_gue.py uses for this checkpoint when given no flags."""
    from dnabert2.configuration_bert import BertConfig
    from dnabert2.gue import default_learning_rate

    config = BertConfig.from_pretrained(folder)
    return config.classifier_pooling, default_learning_rate(config.hidden_size)


def finetune_argv(args: Args, folder: str, task: str, pooling: str, lr: float, seed: int, out: str) -> list[str]:
    """finetune_gue.py's command line for one grid point; a run cut short by a kill is redone (--overwrite)."""
    argv = ["--model_name_or_path", folder, "--task", task, "--gue_root", args.gue_root, "--output_dir", out,
            "--seed", str(seed), "--disable_tqdm", "true", "--overwrite"]
    if args.default_recipe:
        return argv
    return argv + [
        "--classifier_pooling", pooling, "--learning_rate", str(lr),
        "--max_train_samples", str(args.max_train_samples), "--max_eval_samples", str(args.max_eval_samples),
        "--max_steps", str(args.max_steps), "--warmup_steps", str(args.max_steps // 10),
        "--per_device_train_batch_size", "32", "--eval_steps", str(args.eval_steps),
        "--save_steps", str(args.eval_steps), "--save_total_limit", "1", "--logging_steps", str(args.eval_steps)]


def finetune(args: Args, folder: str, task: str, pooling: str, lr: float, seed: int, out: str) -> dict:
    from dnabert2 import finetune_gue

    finetune_gue.main(finetune_argv(args, folder, task, pooling, lr, seed, out))
    with open(os.path.join(out, "test_results.json")) as f:
        test = json.load(f)["test_matthews_correlation"]
    dev = [r["eval_matthews_correlation"] for r in _log_rows(os.path.join(out, "log.csv")) if r.get("eval_matthews_correlation")]
    shutil.rmtree(out)  # weights and checkpoints: only the numbers are kept
    return {"test_mcc": test, "dev_mcc": max(float(d) for d in dev)}


def _log_rows(path: str) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt(values: list[float]) -> str:
    if not values:
        return ""
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def report(args: Args) -> str:
    """Test MCC x100 (mean ± std over seeds) per task and setting, and the dev-selected learning rate."""
    from dnabert2.gue import paper_score

    rows = read_results(args.output_dir)
    kmer_path = Path(args.output_dir) / "kmer.json"
    kmer = json.loads(kmer_path.read_text()) if kmer_path.exists() else {}
    settings = sorted({(r["model"], r["pooling"], float(r["learning_rate"])) for r in rows})
    tasks = [t for t in args.tasks if any(r["task"] == t for r in rows)]
    head = ["task"] + [f"{m} {p} lr {lr:g}" for m, p, lr in settings] + ["k-mer LR", "paper 117M"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    means: dict[tuple, list[float]] = {s: [] for s in settings}
    for task in tasks:
        cells = [task]
        for s in settings:
            values = [r["test_mcc"] for r in rows if (r["model"], r["pooling"], float(r["learning_rate"])) == s and r["task"] == task]
            cells.append(f"{fmt(values)} (n={len(values)})" if values else "")
            if values:
                means[s].append(float(np.mean(values)))
        paper = paper_score(task)
        cells += [f"{100 * kmer[task]:.1f}" if task in kmer else "", "" if paper is None else f"{paper:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    kmer_mean = f"{100 * np.mean([kmer[t] for t in tasks if t in kmer]):.1f}" if kmer else ""
    cells = [f"{100 * np.mean(means[s]):.1f}" if means[s] else "" for s in settings]
    lines.append("| mean of task means | " + " | ".join(cells + [kmer_mean, ""]) + " |")
    return "\n".join(lines)


def curve_points(args: Args) -> list[tuple[str, int, dict[str, float]]]:
    """(model, pretraining steps, {task: mean test MCC over seeds}) for every --curve point with results,
    in the order of steps; the pooling and learning rate are the first of --poolings / --learning_rates."""
    rows = read_results(args.output_dir)
    points = []
    for spec in args.curve:
        name, _, steps = spec.partition("=")
        per_task = {}
        for task in args.tasks:
            values = [r["test_mcc"] for r in rows if r["model"] == name and r["task"] == task
                      and r["pooling"] == args.poolings[0] and float(r["learning_rate"]) == args.learning_rates[0]]
            if values:
                per_task[task] = float(np.mean(values))
        if per_task:
            points.append((name, int(steps), per_task))
    return sorted(points, key=lambda point: point[1])


def curve_report(args: Args) -> str:
    """A table of test MCC x100 against pretraining steps and tokens; the plot goes to --curve_png."""
    points = curve_points(args)
    kmer_path = Path(args.output_dir) / "kmer.json"
    kmer = json.loads(kmer_path.read_text()) if kmer_path.exists() else {}
    tasks = [t for t in args.tasks if all(t in per_task for _, _, per_task in points)]
    head = ["model", "steps", "tokens (M)"] + tasks + ["mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, steps, per_task in points:
        cells = [name, str(steps), f"{steps * args.tokens_per_step / 1e6:.1f}"]
        cells += [f"{100 * per_task[t]:.1f}" for t in tasks] + [f"{100 * np.mean([per_task[t] for t in tasks]):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if kmer:
        lines.append("| k-mer LR | | | " + " | ".join(f"{100 * kmer[t]:.1f}" for t in tasks)
                     + f" | {100 * np.mean([kmer[t] for t in tasks]):.1f} |")
    if args.curve_png and points:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tokens = [steps * args.tokens_per_step / 1e6 for _, steps, _ in points]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for task in tasks:
            ax.plot(tokens, [100 * p[task] for _, _, p in points], color="0.75", lw=0.8)
        ax.plot(tokens, [100 * np.mean([p[t] for t in tasks]) for _, _, p in points], "o-", color="C0",
                lw=2, label=f"mean of {len(tasks)} GUE tasks")
        if kmer:
            ax.axhline(100 * np.mean([kmer[t] for t in tasks]), color="C3", ls="--", label="k-mer LR (mean)")
        ax.set_xlabel("pretraining tokens (millions)")
        ax.set_ylabel("test MCC x100")
        ax.set_title("Fine-tuned test MCC against pretraining amount\n(grey: single tasks)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(args.curve_png, dpi=110)
        plt.close(fig)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    (args,) = HfArgumentParser(Args).parse_args_into_dataclasses(args=argv)
    os.makedirs(args.output_dir, exist_ok=True)
    if not args.report_only:
        index, count = (int(x) for x in args.shard.split("/"))
        if args.kmer and index == 0:
            kmer_path = Path(args.output_dir) / "kmer.json"
            kmer = json.loads(kmer_path.read_text()) if kmer_path.exists() else {}
            max_train = 0 if args.default_recipe else args.max_train_samples
            for task in args.tasks:
                if task not in kmer:
                    kmer[task] = kmer_baseline(os.path.join(args.gue_root, task), max_train)
                    kmer_path.write_text(json.dumps(kmer, indent=1))
        folders = {}
        for spec in args.models:
            name, _, folder = spec.partition("=")
            folders[name] = random_init_folder(args.output_dir) if folder == "random" else folder
        done = {run_key(r) for r in read_results(args.output_dir)}
        # (pooling, lr) per model: the grid's, or with --default_recipe the one finetune_gue.py picks for it
        settings = {name: [default_setting(folder)] if args.default_recipe
                    else list(itertools.product(args.poolings, args.learning_rates)) for name, folder in folders.items()}
        grid = [(seed, task, name, pooling, lr) for seed, task, name in itertools.product(args.seeds, args.tasks, folders)
                for pooling, lr in settings[name]]
        results_path = os.path.join(args.output_dir, f"results_{index}.jsonl")
        for point, (seed, task, name, pooling, lr) in enumerate(grid):
            row = {"model": name, "task": task, "pooling": pooling, "learning_rate": lr, "seed": seed}
            if point % count != index or run_key(row) in done:
                continue
            out = os.path.join(args.output_dir, "work", f"{name}-{task.replace('/', '_')}-{pooling}-{lr:g}-{seed}")
            row.update(finetune(args, folders[name], task, pooling, lr, seed, out))
            with open(results_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)
    recipe = ("finetune_gue.py defaults, whole training split" if args.default_recipe
              else f"train subset {args.max_train_samples}, {args.max_steps} steps of 32")
    print(f"test MCC x100, mean ± std over seeds ({recipe})\n")
    print(report(args))
    if args.curve:
        print("\npretraining-amount curve: test MCC x100, mean over seeds\n")
        print(curve_report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
