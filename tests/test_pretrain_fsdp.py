"""FSDP on CPU.

Through TrainingArguments (`--fsdp "full_shard auto_wrap"`) FSDP cannot run on CPU: accelerate 1.15
turns the FSDP plugin on only for GPU-like distributed types (AcceleratorState switches to
DistributedType.FSDP only from MULTI_GPU, MULTI_NPU, ...); under --use_cpu it stays MULTI_CPU / NO
and would train unsharded (DDP) without a word. pretrain.py refuses that (tested below).

What does run on CPU: torch's FSDP2 (`fully_shard`, gloo) with the wrapping the flags ask for (each
BertLayer its own unit, then the root). Two processes shard the model, take one SGD step on the
same batch, gather the full state dict and save a Hub folder; it reloads in one process with the
weights of the same step taken without FSDP (the independent reference).
"""

import os
import subprocess
import sys

import torch

from helpers import REPO_ROOT

GENOMES = [str(REPO_ROOT / "data" / "genomes" / f) for f in ("phage_lambda.fa.gz", "human_mito.fa.gz")]

SHARDED_STEP = r"""
import os, sys, torch, torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from dnabert2.bert_layers import BertLayer
from dnabert2.configuration_bert import PRESETS, BertConfig
from dnabert2.modeling_bert import BertForMaskedLM

dist.init_process_group("gloo")
torch.manual_seed(0)
model = BertForMaskedLM(BertConfig(**PRESETS["dnabert2-tiny"]))
for module in model.modules():
    if isinstance(module, BertLayer):
        fully_shard(module)  # transformer_layer_cls_to_wrap = BertLayer
fully_shard(model)
shards = [p for p in model.parameters()]
assert all(p.to_local().shape[0] <= (p.shape[0] + 1) // 2 for p in shards if p.dim() > 0 and p.shape[0] > 1), "not sharded"
ids = torch.randint(5, 4096, (4, 32), generator=torch.Generator().manual_seed(1))  # (batch, L), the same on every rank
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model(input_ids=ids, labels=ids).loss.backward()
optimizer.step()
state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
if dist.get_rank() == 0:
    unsharded = BertForMaskedLM(model.config)
    unsharded.load_state_dict(state)
    unsharded.save_pretrained(sys.argv[1])
dist.barrier()
dist.destroy_process_group()
"""


def test_fsdp2_sharded_step_reloads_in_one_process_with_the_unsharded_weights(tmp_path):
    from test_pretrain import free_port

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.modeling_bert import BertForMaskedLM

    script = tmp_path / "sharded_step.py"
    script.write_text(SHARDED_STEP)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(script), str(tmp_path / "saved")]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    torch.manual_seed(0)  # the same initial weights and step, no FSDP
    reference = BertForMaskedLM(BertConfig(**PRESETS["dnabert2-tiny"]))
    start = {k: v.clone() for k, v in reference.state_dict().items()}
    ids = torch.randint(5, 4096, (4, 32), generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    reference(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    reloaded = BertForMaskedLM.from_pretrained(tmp_path / "saved").state_dict()
    expected = reference.state_dict()
    assert reloaded.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(reloaded[name], expected[name], rtol=0, atol=1e-6), name
    assert not torch.equal(expected["bert.encoder.layer.0.attention.self.Wqkv.weight"], start["bert.encoder.layer.0.attention.self.Wqkv.weight"])


def test_fsdp_flag_on_cpu_is_refused_not_silently_dropped(tmp_path):
    from test_pretrain import free_port

    # One process: transformers itself refuses ("Using fsdp only works in distributed training"). Under
    # torchrun on CPU accelerate would drop the plugin and train with DDP; pretrain.py refuses instead.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(REPO_ROOT / "pretrain.py"), "--model_config", "dnabert2-tiny", "--train_files", *GENOMES,
           "--min_bp", "100", "--max_bp", "400", "--per_device_train_batch_size", "8", "--report_to", "none",
           "--use_cpu", "--ddp_backend", "gloo", "--max_steps", "1", "--save_strategy", "no",
           "--fsdp", "full_shard auto_wrap", "--fsdp_config", '{"transformer_layer_cls_to_wrap": ["BertLayer"]}',
           "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode != 0
    assert "--fsdp was given but accelerate did not enable FSDP (distributed type MULTI_CPU)" in result.stderr, result.stderr[-3000:]
