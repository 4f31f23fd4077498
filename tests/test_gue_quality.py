"""bench/gue_quality.py turns its per-run result lines into the tables and the curve that BENCHMARKS.md
quotes: means over seeds, std with ddof=1, tasks in the order given, curve points ordered by steps."""

import json

import gue_quality  # bench/, on pytest's pythonpath
from dnabert2.finetune_gue import explicit_flags


def write_results(folder, rows, kmer):
    folder.mkdir(exist_ok=True)
    with open(folder / "results_0.jsonl", "w") as f:
        for model, task, seed, mcc in rows:
            f.write(json.dumps({"model": model, "task": task, "pooling": "mean", "learning_rate": 5e-4,
                                "seed": seed, "test_mcc": mcc, "dev_mcc": mcc}) + "\n")
    (folder / "kmer.json").write_text(json.dumps(kmer))


def args_for(folder, **kwargs):
    return gue_quality.Args(gue_root="unused", output_dir=str(folder), tasks=["tf/0", "mouse/0"], **kwargs)


RUNS = [("random", "tf/0", 1, 0.2), ("random", "tf/0", 2, 0.4), ("random", "mouse/0", 1, 0.1),
        ("late", "tf/0", 1, 0.5), ("late", "mouse/0", 1, 0.3)]


def test_report_gives_mean_and_sample_std_over_seeds(tmp_path):
    write_results(tmp_path / "grid", RUNS, {"tf/0": 0.6, "mouse/0": 0.2})
    table = gue_quality.report(args_for(tmp_path / "grid")).splitlines()
    tf0 = next(line for line in table if line.startswith("| tf/0 "))
    assert "| 30.0 ± 14.1 (n=2) |" in tf0 and "| 50.0 (n=1) |" in tf0 and "| 60.0 |" in tf0
    assert table[-1] == "| mean of task means | 40.0 | 20.0 | 40.0 |  |"  # late, random, k-mer


def test_curve_orders_points_by_steps_and_converts_steps_to_tokens(tmp_path):
    write_results(tmp_path / "grid", RUNS, {"tf/0": 0.6, "mouse/0": 0.2})
    png = tmp_path / "curve.png"
    args = args_for(tmp_path / "grid", curve=["late=3000", "random=0"], curve_png=str(png), tokens_per_step=1000.0)
    assert gue_quality.curve_report(args).splitlines()[2:] == [
        "| random | 0 | 0.0 | 30.0 | 10.0 | 20.0 |",
        "| late | 3000 | 3.0 | 50.0 | 30.0 | 40.0 |",
        "| k-mer LR | | | 60.0 | 20.0 | 40.0 |",
    ]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_recipe_runs_the_targets_command_with_only_a_seed_added(tmp_path):
    point = dict(folder="MODEL", task="mouse/0", pooling="mean", lr=5e-4, seed=2, out="OUT")
    target = gue_quality.finetune_argv(args_for(tmp_path, default_recipe=True), **point)
    assert explicit_flags(target) == {"model_name_or_path", "task", "gue_root", "output_dir", "seed", "disable_tqdm", "overwrite"}
    assert target[target.index("--seed") + 1] == "2" and target[target.index("--task") + 1] == "mouse/0"
    subset = gue_quality.finetune_argv(args_for(tmp_path, max_train_samples=300, max_steps=40), **point)
    assert {"classifier_pooling", "learning_rate", "max_train_samples", "max_steps"} <= explicit_flags(subset)
    assert subset[subset.index("--max_train_samples") + 1] == "300" and subset[subset.index("--warmup_steps") + 1] == "4"


def test_default_setting_is_the_shipped_cards_pooling_and_the_learning_rate_for_width_256():
    assert gue_quality.default_setting(str(gue_quality.ROOT)) == ("mean", 5e-4)
