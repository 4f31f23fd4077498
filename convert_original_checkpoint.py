"""Convert an original DNABERT-2 checkpoint (e.g. zhihan1996/DNABERT-2-117M) into a folder of this repo.

    python convert_original_checkpoint.py ORIGINAL_DIR_OR_HUB_ID OUTPUT_DIR [--push_to_hub ORG/NAME]

Input: a folder (or Hub id) with config.json, pytorch_model.bin or model.safetensors, and the
tokenizer files. The weights are read with torch.load(weights_only=True) (or safetensors), never
unpickled otherwise. The key set must be exactly the original MLM checkpoint's (142 keys for the
117M config): anything missing, unexpected or of the wrong shape is refused.
Output: our code files, a config with model_type "dnabert2" and auto_map, model.safetensors, the
original tokenizer.json with a tokenizer_config.json that transformers 4.x and 5.x load, a model
card, and conversion.json with the sha256 of input and output weights. --push_to_hub uploads it
with the token of the environment (HF_TOKEN) or `hf auth login`; the token is never printed.
"""

import argparse
import hashlib
import json
import os
import sys

import torch

from dnabert2.configuration_bert import BertConfig
from dnabert2.dna_tokenizer import save_for_transformers
from dnabert2.modeling_bert import BertForMaskedLM

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FIELDS_DROPPED = ("auto_map", "architectures", "model_type", "_name_or_path", "transformers_version")


class CheckpointMismatchError(ValueError):
    """The weights do not have the original DNABERT-2 key set and shapes."""


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_source(source: str) -> str:
    """A local folder as is; a Hub id through the local Hub cache (downloading when online)."""
    if os.path.isdir(source):
        return source
    from huggingface_hub import snapshot_download

    return snapshot_download(source, allow_patterns=["*.json", "*.bin", "*.safetensors", "*.txt"])


def load_weights(folder: str) -> tuple[dict[str, torch.Tensor], str]:
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(path), path
            return torch.load(path, map_location="cpu", weights_only=True), path
    raise FileNotFoundError(f"{folder}: no {' or '.join(WEIGHT_FILES)}")


def check_keys(state: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    """Refuse unless `state` has exactly the model's keys with the same shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k}: {tuple(state[k].shape)} (expected {expected[k]})" for k in set(state) & set(expected)
                   if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        lines = [f"the checkpoint does not match the DNABERT-2 layout ({len(expected)} keys expected, {len(state)} found)"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
        raise CheckpointMismatchError("\n".join(lines))


def write_tokenizer(source: str, output: str) -> None:
    """The original tokenizer.json, saved with the configs every tokenizer of this repo gets."""
    from tokenizers import Tokenizer

    tokenizer_json = os.path.join(source, "tokenizer.json")
    if not os.path.isfile(tokenizer_json):
        raise FileNotFoundError(f"{source}: no tokenizer.json")
    save_for_transformers(Tokenizer.from_file(tokenizer_json), output)


MODEL_CARD = """---
library_name: transformers
pipeline_tag: fill-mask
license: apache-2.0
tags: [biology, genomics, dna, dnabert2]
---
# {name} (converted)

DNABERT-2 weights from `{source}`, converted to the remote code of the DNABERT-2 reference
implementation: it loads on transformers 4.x and 5.x, on CPU with or without triton, returns
ModelOutputs and supports `attn_implementation` "sdpa", "eager" and "triton" (CUDA).

```python
from transformers import AutoModel, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)
model = AutoModel.from_pretrained("{name}", trust_remote_code=True)
```

Weights are unchanged (sha256 of the source file `{weights_name}`: `{input_sha}`). The original
checkpoint has no pooler: `BertForSequenceClassification` initialises it fresh. See
conversion.json for the output checksums. Paper: Zhou et al., "DNABERT-2: Efficient Foundation
Model and Benchmark for Multi-Species Genome", ICLR 2024.
"""


def convert(source: str, output: str) -> dict:
    folder = resolve_source(source)
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{folder}: no config.json")
    with open(config_path) as f:
        fields = {k: v for k, v in json.load(f).items() if k not in CONFIG_FIELDS_DROPPED}
    config = BertConfig(**fields)
    config.architectures = ["BertForMaskedLM"]
    state, weights_path = load_weights(folder)
    with torch.device("meta"):
        skeleton = BertForMaskedLM(config)
    check_keys(state, skeleton)
    # Compared in the checkpoint itself: once loaded, the two tied names share one tensor, and
    # whichever key loads last would silently overwrite the other.
    if not torch.equal(state["cls.predictions.decoder.weight"], state["bert.embeddings.word_embeddings.weight"]):
        raise CheckpointMismatchError(
            "cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight, the word "
            "embeddings it is tied to"
        )

    model = BertForMaskedLM(config)
    model.load_state_dict(state, strict=True)
    model.tie_weights()
    os.makedirs(output, exist_ok=True)
    model.save_pretrained(output)
    write_tokenizer(folder, output)
    record = {
        "source": source,
        "input_weights": {"file": os.path.basename(weights_path), "sha256": sha256(weights_path)},
        "output_weights": {"file": "model.safetensors", "sha256": sha256(os.path.join(output, "model.safetensors"))},
        "keys": len(state),
    }
    with open(os.path.join(output, "conversion.json"), "w") as f:
        json.dump(record, f, indent=2)
    with open(os.path.join(output, "README.md"), "w") as f:
        f.write(MODEL_CARD.format(
            name=os.path.basename(os.path.normpath(output)), source=source,
            weights_name=record["input_weights"]["file"], input_sha=record["input_weights"]["sha256"],
        ))
    return record


def push(output: str, repo_id: str) -> str:
    """Upload the folder; the token comes from HF_TOKEN or the stored login and is never echoed."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(folder_path=output, repo_id=repo_id, commit_message="Add converted DNABERT-2 checkpoint").commit_url


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="original checkpoint folder or Hub id")
    p.add_argument("output", help="folder to write")
    p.add_argument("--push_to_hub", metavar="REPO_ID", help="upload the converted folder to this Hub repo")
    args = p.parse_args(argv)
    record = convert(args.source, args.output)
    print(json.dumps(record, indent=2))
    if args.push_to_hub:
        print(f"pushed: {push(args.output, args.push_to_hub)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (CheckpointMismatchError, FileNotFoundError) as e:
        sys.exit(f"convert_original_checkpoint.py: error: {e}")
