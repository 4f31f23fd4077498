"""Convert an original DNABERT-2 checkpoint (e.g. zhihan1996/DNABERT-2-117M) into a folder of this repo.

    python convert_original_checkpoint.py ORIGINAL_DIR_OR_HUB_ID OUTPUT_DIR [--push_to_hub ORG/NAME] [--overwrite]

Input: a folder (or Hub id) with config.json, pytorch_model.bin or model.safetensors, and the
tokenizer files. The weights are read with torch.load(weights_only=True) (or safetensors), never
unpickled otherwise. The key set must be exactly the original MLM checkpoint's (142 keys for the
117M config): anything missing, unexpected or of the wrong shape is refused. Config values that
change the computation without changing a shape (hidden_act, layer_norm_eps, and the head count
of the 117M shapes) must be the published ones. Every input, tokenizer.json included, is checked
before anything is written; the folder is written under a temporary name and renamed, and an
existing OUTPUT_DIR is replaced only with --overwrite (never the source folder itself).
Output: our code files, a config with model_type "dnabert2" and auto_map, model.safetensors, the
original tokenizer.json with a tokenizer_config.json that transformers 4.x and 5.x load, a model
card, and conversion.json with the sha256 of input and output weights. --push_to_hub uploads it
with the token of the environment (HF_TOKEN) or `hf auth login`; the token is never printed.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import torch

from dnabert2.cli import OutputArguments, ScriptParser, UsageError, positional, publish_folder, require_model, run
from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.dna_tokenizer import save_for_transformers
from dnabert2.modeling_bert import BertForMaskedLM

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FIELDS_DROPPED = ("auto_map", "architectures", "model_type", "_name_or_path", "transformers_version")
# Config fields that change what the model computes while every tensor keeps its shape, so the
# weights cannot reveal a wrong value: they must equal what every published DNABERT-2 uses ...
PUBLISHED_COMPUTATION = {"hidden_act": "gelu", "layer_norm_eps": 1e-12}
# ... and a checkpoint with the published 117M shapes must have the published head count.
PUBLISHED_117M = {**PRESETS["dnabert2-117m"], "vocab_size": 4096}


@dataclass
class Args:
    source: str = field(metadata=positional(help="original checkpoint folder or Hub id"))
    output: str = field(metadata=positional(help="folder to write (must not exist, or --overwrite)"))
    push_to_hub: str | None = field(default=None, metadata={"help": "upload the converted folder to this Hub repo (ORG/NAME)"})


class CheckpointMismatchError(ValueError):
    """The weights do not have the original DNABERT-2 key set and shapes, or the config does not fit them."""


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_source(source: str) -> str:
    """A local folder as is; a Hub id through the local Hub cache (downloading when online)."""
    require_model(source)  # a folder with config.json, or a Hub id; else "not found"
    if os.path.isdir(source):
        return source
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source, allow_patterns=["*.json", "*.bin", "*.safetensors", "*.txt"])
    except Exception as e:  # offline without a cached copy, unknown repo, ...
        raise FileNotFoundError(f"{source}: not found as a local folder, and the Hub download failed ({type(e).__name__})") from None


def load_weights(folder: str) -> tuple[dict[str, torch.Tensor], str]:
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                if name.endswith(".safetensors"):
                    from safetensors.torch import load_file

                    state = load_file(path)
                else:
                    state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # truncated file, not a checkpoint, or a pickle that holds code
                raise CheckpointMismatchError(f"{path}: unreadable weights ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise CheckpointMismatchError(f"{path}: expected a mapping of tensor names to tensors")
            return state, path
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


def check_config(fields: dict, path: str) -> None:
    """Refuse config values that the weights cannot confirm and that would change the outputs."""
    for name, published in PUBLISHED_COMPUTATION.items():
        if name in fields and fields[name] != published:
            raise CheckpointMismatchError(
                f"{path}: {name}={fields[name]!r}, but every published DNABERT-2 checkpoint uses {published!r}; "
                "the weights have the same shapes either way, so the converted model would compute something else"
            )
    shape = {k: fields.get(k, BertConfig().to_dict()[k]) for k in PUBLISHED_117M if k != "num_attention_heads"}
    heads = fields.get("num_attention_heads", PUBLISHED_117M["num_attention_heads"])
    if all(shape[k] == PUBLISHED_117M[k] for k in shape) and heads != PUBLISHED_117M["num_attention_heads"]:
        raise CheckpointMismatchError(
            f"{path}: num_attention_heads={heads}, but DNABERT-2-117M (hidden_size 768, 12 layers) has "
            f"{PUBLISHED_117M['num_attention_heads']}; the head count does not change any tensor shape, "
            "so the weights cannot confirm it: fix config.json"
        )


def read_tokenizer(source: str):
    """The original tokenizer.json, parsed (so a broken file is refused before anything is written)."""
    from tokenizers import Tokenizer

    tokenizer_json = os.path.join(source, "tokenizer.json")
    if not os.path.isfile(tokenizer_json):
        raise FileNotFoundError(f"{source}: no tokenizer.json")
    try:
        return Tokenizer.from_file(tokenizer_json)
    except Exception as e:  # tokenizers raises a bare Exception for malformed JSON
        raise CheckpointMismatchError(f"{tokenizer_json}: not a tokenizers file ({str(e).splitlines()[0][:200]})") from None


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


def convert(source: str, output: str, overwrite: bool = False) -> dict:
    """Validate everything (config, weights, tokenizer), then write into a temporary folder and rename it."""
    folder = resolve_source(source)
    src, out = os.path.realpath(folder), os.path.realpath(output)
    if src == out or src.startswith(out + os.sep):
        raise UsageError(f"{output}: this is (or holds) the source checkpoint {source}; choose another output folder")
    if os.path.exists(output) and not (os.path.isdir(output) and not os.listdir(output)) and not overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{folder}: no config.json")
    try:
        with open(config_path, encoding="utf-8-sig") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointMismatchError(f"{config_path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointMismatchError(f"{config_path}: expected a JSON object")
    fields = {k: v for k, v in raw.items() if k not in CONFIG_FIELDS_DROPPED}
    check_config(fields, config_path)
    try:
        config = BertConfig(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointMismatchError(f"{config_path}: {e}") from None
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
    tokenizer = read_tokenizer(folder)

    model = BertForMaskedLM(config)
    model.load_state_dict(state, strict=True)
    model.tie_weights()
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.normpath(output))}.tmp-", dir=parent)
    try:
        model.save_pretrained(tmp)
        save_for_transformers(tokenizer, tmp)
        record = {
            "source": source,
            "input_weights": {"file": os.path.basename(weights_path), "sha256": sha256(weights_path)},
            "output_weights": {"file": "model.safetensors", "sha256": sha256(os.path.join(tmp, "model.safetensors"))},
            "keys": len(state),
        }
        with open(os.path.join(tmp, "conversion.json"), "w") as f:
            json.dump(record, f, indent=2)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(MODEL_CARD.format(
                name=os.path.basename(os.path.normpath(output)), source=source,
                weights_name=record["input_weights"]["file"], input_sha=record["input_weights"]["sha256"],
            ))
        publish_folder(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def push(output: str, repo_id: str) -> str:
    """Upload the folder; the token comes from HF_TOKEN or the stored login and is never echoed."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return api.upload_folder(folder_path=output, repo_id=repo_id, commit_message="Add converted DNABERT-2 checkpoint").commit_url


def main(argv=None) -> int:
    args, out = ScriptParser((Args, OutputArguments), description=__doc__).parse(argv)
    record = convert(args.source, args.output, overwrite=out.overwrite)
    print(json.dumps(record, indent=2))
    if args.push_to_hub:
        print(f"pushed: {push(args.output, args.push_to_hub)}")
    return 0


if __name__ == "__main__":
    run(main)
