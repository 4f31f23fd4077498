"""Test configuration. The environment is fixed here, before transformers or triton is imported:
no network (HF_HUB_OFFLINE), Triton kernels in the CPU interpreter, and a private cache for the
remote-code modules that transformers copies on `trust_remote_code=True`.

Lives here: that environment and the pytest fixtures. Not here: constants and classes that test
modules import (helpers.py)."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRITON_INTERPRET"] = "1"
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="dnabert2-hf-modules-"))
os.environ.setdefault("DNABERT2_INDEX_CACHE", tempfile.mkdtemp(prefix="dnabert2-record-index-"))  # never ~/.cache
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import PARITY_CONFIGS, Parity  # noqa: E402


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
