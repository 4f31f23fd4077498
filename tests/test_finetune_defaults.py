"""The shipped checkpoint's fine-tuning defaults: pooling as the model card states, and the learning
rate by model width (an explicit flag wins)."""

import json
import re

from helpers import REPO_ROOT
from dnabert2 import finetune_gue
from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.gue import default_learning_rate


def test_shipped_config_pools_as_the_model_card_says():
    card = (REPO_ROOT / "README.md").read_text()
    (stated,) = re.findall(r'`"classifier_pooling": "(\w+)"` in `config.json`', card)
    assert stated == "mean"
    assert json.loads((REPO_ROOT / "config.json").read_text())["classifier_pooling"] == stated


def test_learning_rate_default_depends_on_width():
    assert default_learning_rate(768) == 3e-5  # DNABERT-2-117M: the paper's value
    assert default_learning_rate(1024) == 3e-5
    assert default_learning_rate(256) == 5e-4  # the shipped dnabert2-small
    assert default_learning_rate(64) == 5e-4


def test_model_learning_rate_reads_the_checkpoint_width(tmp_path):
    assert finetune_gue.model_learning_rate(str(REPO_ROOT)) == 5e-4
    BertConfig(**PRESETS["dnabert2-117m"]).save_pretrained(tmp_path)
    assert finetune_gue.model_learning_rate(str(tmp_path)) == 3e-5


def test_an_explicit_learning_rate_wins(monkeypatch, tmp_path):
    seen = {}

    def record(model_args, data_args, training_args, explicit):
        seen["lr"] = training_args.learning_rate
        return 0

    monkeypatch.setattr(finetune_gue, "run_all", record)
    finetune_gue.main(["--output_dir", str(tmp_path / "a")])
    assert seen["lr"] == 5e-4
    finetune_gue.main(["--output_dir", str(tmp_path / "b"), "--learning_rate", "1e-4"])
    assert seen["lr"] == 1e-4
