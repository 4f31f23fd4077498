"""Test configuration. The environment is fixed here, before transformers or triton is imported:
no network (HF_HUB_OFFLINE), Triton kernels in the CPU interpreter, and a private cache for the
remote-code modules that transformers copies on `trust_remote_code=True`."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="dnabert2-hf-modules-"))
os.environ.setdefault("DNABERT2_INDEX_CACHE", tempfile.mkdtemp(prefix="dnabert2-record-index-"))  # never ~/.cache
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parent.parent
PARITY_CONFIGS = ("cfg_a", "cfg_b")


class Parity:
    """One parity configuration: the original config, weights (original key names), inputs and outputs."""

    def __init__(self, name):
        self.name = name
        self.dir = FIXTURES / "parity" / name
        self.weights = load_file(self.dir / "weights.safetensors")
        self.inputs = load_file(self.dir / "inputs.safetensors")
        self.outputs = load_file(self.dir / "outputs.safetensors")
        self.real = self.inputs["attention_mask"].bool()  # (batch, L)

    def config(self, **overrides):
        from dnabert2.configuration_bert import BertConfig

        return BertConfig.from_pretrained(self.dir, **overrides)

    def state_dict(self, head):
        """The fixture weights a model with `head` ("mlm" or "cls") has."""
        drop = ("classifier.", "bert.pooler.") if head == "mlm" else ("cls.",)
        return {k: v for k, v in self.weights.items() if not k.startswith(drop)}

    def model(self, head, **overrides):
        from dnabert2.modeling_bert import BertForMaskedLM, BertForSequenceClassification

        cls = BertForMaskedLM if head == "mlm" else BertForSequenceClassification
        model = cls(self.config(**overrides))
        model.load_state_dict(self.state_dict(head), strict=True)
        return model.eval()


@pytest.fixture(scope="session", params=PARITY_CONFIGS)
def parity(request):
    return Parity(request.param)


@pytest.fixture(scope="session")
def parity_a():
    return Parity("cfg_a")


@pytest.fixture(scope="session")
def saved_parity_models(tmp_path_factory):
    """save_pretrained folders of the fixture models, per (config, head)."""
    folders = {}

    def get(name, head):
        if (name, head) not in folders:
            folder = tmp_path_factory.mktemp(f"{name}-{head}")
            Parity(name).model(head).save_pretrained(folder)
            folders[name, head] = folder
        return folders[name, head]

    return get


@pytest.fixture
def no_grad():
    with torch.no_grad():
        yield
