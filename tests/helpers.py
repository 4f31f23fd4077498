"""Shared test helpers: the repository paths and the parity fixtures of tests/fixtures/parity.

Lives here: constants and classes that test modules import (`from helpers import ...`; pytest puts
tests/ on sys.path through `pythonpath` in pyproject.toml). Not here: pytest fixtures and the
environment of the session (conftest.py, which must run before transformers or triton is imported).
"""

import tracemalloc
from pathlib import Path

from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
PARITY_CONFIGS = ("cfg_a", "cfg_b")


class Parity:
    """One parity configuration: the original config, weights (original key names), inputs and outputs."""

    def __init__(self, name: str):
        self.name = name
        self.dir = FIXTURES / "parity" / name
        self.weights = load_file(self.dir / "weights.safetensors")
        self.inputs = load_file(self.dir / "inputs.safetensors")
        self.outputs = load_file(self.dir / "outputs.safetensors")
        self.real = self.inputs["attention_mask"].bool()  # (batch, L)

    def config(self, **overrides):
        from dnabert2.configuration_bert import BertConfig

        return BertConfig.from_pretrained(self.dir, **overrides)

    def state_dict(self, head: str) -> dict:
        """The fixture weights a model with `head` ("mlm" or "cls") has."""
        drop = ("classifier.", "bert.pooler.") if head == "mlm" else ("cls.",)
        return {k: v for k, v in self.weights.items() if not k.startswith(drop)}

    def model(self, head: str, **overrides):
        from dnabert2.modeling_bert import BertForMaskedLM, BertForSequenceClassification

        cls = BertForMaskedLM if head == "mlm" else BertForSequenceClassification
        model = cls(self.config(**overrides))
        model.load_state_dict(self.state_dict(head), strict=True)
        return model.eval()


def assert_windows_stream_in_bounded_memory(path: Path, total_bp: int, limit_bytes: int = 4_000_000) -> None:
    """genome_io.iter_windows over `path` yields `total_bp` bases while its peak Python memory stays below `limit_bytes`."""
    from dnabert2.genome_io import iter_windows

    tracemalloc.start()
    total = sum(len(w) for _, _, w in iter_windows([str(path)], 4000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == total_bp
    assert peak < limit_bytes, f"peak {peak} bytes: the reader holds too much of the file"
