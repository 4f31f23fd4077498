"""The README's code runs as written, and CI runs the README's test command."""

import os
import re
import subprocess
import sys

from helpers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_smoke_usage_snippet_runs_as_written():
    section = README.split("## Use the model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("torch.Size([2,") and lines[1].startswith("(2,")


def test_ci_runs_the_readme_test_command():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    test_command = next(line.split("#")[0].strip() for line in quickstart.splitlines() if "pytest" in line)
    assert test_command in (REPO_ROOT / ".ci" / "run").read_text().splitlines()


def test_model_card_front_matter_is_hub_metadata():
    front = README.split("---")[1]
    for field in ("library_name: transformers", "pipeline_tag: fill-mask", "license:", "tags: [biology, genomics, dna"):
        assert field in front
