"""The encoder behaves like a first-class transformers model: outputs, flags, dtypes, errors, saving."""

import json
import subprocess
import sys
import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from dnabert2 import bert_attention
from helpers import REPO_ROOT
from dnabert2.configuration_bert import BertConfig
from dnabert2.flash_attn_triton import TRITON_AVAILABLE
from dnabert2.modeling_bert import BertForMaskedLM, BertForSequenceClassification, BertModel

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def tiny_model(cls=BertModel, seed=0, **overrides):
    torch.manual_seed(seed)
    return cls(BertConfig(**{**TINY, **overrides})).eval()


def random_batch(lengths, vocab=TINY["vocab_size"], seed=0):
    """Right-padded batch of random ids; (input_ids, attention_mask), each (batch, max(lengths))."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (len(lengths), max(lengths)), generator=g)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, 3), mask.long()


# --- batching and padding -------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_hidden_states_do_not_depend_on_batch_companions(parity_a, backend, no_grad):
    model = parity_a.model("cls", attn_implementation=backend)
    ids, mask = parity_a.inputs["input_ids"], parity_a.inputs["attention_mask"]
    batched = model.bert(ids, mask).last_hidden_state
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        alone = model.bert(ids[row : row + 1, :n]).last_hidden_state[0]
        assert (alone - batched[row, :n]).abs().max() <= 1e-5


def test_left_padding_gives_the_same_states_as_right_padding(no_grad):
    model = tiny_model()
    ids, mask = random_batch([7, 3])
    right = model(ids, mask).last_hidden_state
    left_ids = torch.stack([ids[0], torch.cat([ids[1, 3:], ids[1, :3]])])
    left_mask = torch.stack([mask[0], torch.cat([mask[1, 3:], mask[1, :3]])])
    left = model(left_ids, left_mask).last_hidden_state
    assert torch.allclose(left[1, 4:], right[1, :3], atol=1e-6)
    assert torch.allclose(model(left_ids, left_mask).pooler_output, model(ids, mask).pooler_output, atol=1e-6)


def test_sdpa_buckets_mixed_lengths_without_padding_waste():
    from dnabert2.bert_padding import MAX_BUCKET_PADDING, PackedBatch

    _, mask = random_batch([100, 98, 12, 60, 100, 3])
    packed = PackedBatch.from_attention_mask(mask)
    covered = sorted(i for b in packed.buckets for i in b.seq_ids)
    assert covered == list(range(6))
    for bucket in packed.buckets:
        real = int(bucket.valid.sum())
        assert bucket.seqlen * len(bucket.seq_ids) - real <= MAX_BUCKET_PADDING * bucket.seqlen * len(bucket.seq_ids)


def test_query_chunked_sdpa_matches_unchunked(monkeypatch, no_grad):
    model = tiny_model(attn_implementation="sdpa")
    ids, mask = random_batch([300, 170, 40])
    whole = model(ids, mask).last_hidden_state
    monkeypatch.setattr(bert_attention, "SDPA_BIAS_BUDGET", 4 * 300 * 16)  # 16 query rows per chunk
    chunked = model(ids, mask).last_hidden_state
    assert (whole - chunked).abs().max() <= 1e-5


def test_long_sequence_in_several_query_chunks_matches_eager(monkeypatch, no_grad):
    """Blocks longer than CPU_MATMUL_ATTENTION_MAX_LEN take torch's fused kernel, chunk by chunk."""
    model = tiny_model()
    ids, mask = random_batch([900, 620])
    model.config._attn_implementation = "eager"
    reference = model(ids, mask).last_hidden_state
    model.config._attn_implementation = "sdpa"
    monkeypatch.setattr(bert_attention, "SDPA_BIAS_BUDGET", 4 * 4 * 900 * 100)  # 100 query rows per chunk
    chunked = model(ids, mask).last_hidden_state
    assert len(range(0, 900, 100)) > 1
    assert (reference - chunked).abs().max() <= 1e-5


def test_long_sequences_need_no_position_limit_and_warn_nothing(no_grad):
    model = tiny_model()
    ids, _ = random_batch([2000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model(ids).last_hidden_state
    assert out.shape == (1, 2000, TINY["hidden_size"])
    model.config._attn_implementation = "eager"
    assert (out - model(ids).last_hidden_state).abs().max() <= 1e-5


def test_fully_masked_row_is_refused_with_its_index():
    ids, mask = random_batch([4, 4])
    mask[1] = 0
    with pytest.raises(ValueError, match="row 1 has no real tokens"):
        tiny_model()(ids, mask)


# --- outputs ----------------------------------------------------------------------------------

def test_returns_model_outputs_and_tuples_on_request(no_grad):
    model = tiny_model()
    ids, mask = random_batch([5, 3])
    out = model(ids, mask)
    assert type(out).__name__ == "BaseModelOutputWithPooling"
    as_tuple = model(ids, mask, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.last_hidden_state)


def test_hidden_states_are_padded_per_layer(no_grad):
    model = tiny_model()
    ids, mask = random_batch([5, 3])
    out = model(ids, mask, output_hidden_states=True)
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    for h in out.hidden_states:
        assert h.shape == (2, 5, TINY["hidden_size"])
        assert torch.all(h[1, 3:] == 0)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def test_output_attentions_switches_to_eager_once_with_a_warning(caplog, no_grad):
    model = tiny_model(attn_implementation="sdpa")
    ids, mask = random_batch([5, 3])
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # forget a warning an earlier test of this process gave
    hf_logging.enable_propagation()
    with caplog.at_level("WARNING"):
        out = model(ids, mask, output_attentions=True)
        model(ids, mask, output_attentions=True)
        model(ids, mask, output_attentions=True)
    hf_logging.disable_propagation()
    assert sum("only the 'eager' backend" in r.message for r in caplog.records) == 1
    assert len(out.attentions) == TINY["num_hidden_layers"]
    probs = out.attentions[0]  # (batch, heads, L, L)
    assert probs.shape == (2, TINY["num_attention_heads"], 5, 5)
    assert torch.allclose(probs[0].sum(-1), torch.ones(4, 5))
    assert torch.all(probs[1, :, :3, 3:] == 0), "padding keys get no attention"
    sdpa_states = model(ids, mask).last_hidden_state
    assert torch.allclose(out.last_hidden_state, sdpa_states, atol=1e-5)


def test_inputs_embeds_equal_input_ids(no_grad):
    model = tiny_model()
    ids, mask = random_batch([6, 2])
    embeds = model.get_input_embeddings()(ids)
    a = model(input_ids=ids, attention_mask=mask).last_hidden_state
    b = model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(input_ids=ids, inputs_embeds=embeds)


def test_masked_lm_projects_only_labelled_positions():
    model = tiny_model(BertForMaskedLM)
    ids, mask = random_batch([6, 4])
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 1] = 7, 9
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == (2, TINY["vocab_size"])
    full = model(ids, mask).logits  # (batch, L, vocab)
    assert torch.allclose(out.logits, full[[0, 1], [2, 1]], atol=1e-6)
    expected = torch.nn.functional.cross_entropy(full[[0, 1], [2, 1]], torch.tensor([7, 9]))
    assert torch.allclose(out.loss, expected, atol=1e-6)
    labels[1, 5] = 3  # a padding position
    with pytest.raises(ValueError, match="padding position"):
        model(ids, mask, labels=labels)


def test_decoder_is_tied_to_word_embeddings():
    model = tiny_model(BertForMaskedLM)
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_mean_pooling_classifier_uses_masked_mean(no_grad):
    model = tiny_model(BertForSequenceClassification, classifier_pooling="mean", num_labels=3)
    assert model.bert.pooler is None
    ids, mask = random_batch([6, 2])
    hidden = model.bert(ids, mask).last_hidden_state
    expected_pooled = torch.stack([hidden[0, :6].mean(0), hidden[1, :2].mean(0)])
    assert torch.allclose(model(ids, mask).logits, model.classifier(expected_pooled), atol=1e-6)


# --- training ---------------------------------------------------------------------------------

def _grads(model, ids, mask):
    model.zero_grad()
    out = model(ids, mask, labels=torch.tensor([0, 1]))
    out.loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_sdpa_gradients_match_eager():
    ids, mask = random_batch([9, 4])
    eager = _grads(tiny_model(BertForSequenceClassification, attn_implementation="eager"), ids, mask)
    sdpa = _grads(tiny_model(BertForSequenceClassification, attn_implementation="sdpa"), ids, mask)
    assert eager.keys() == sdpa.keys()
    for name in eager:
        assert torch.allclose(eager[name], sdpa[name], atol=1e-5), name


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, mask = random_batch([9, 4])
    plain = _grads(tiny_model(BertForSequenceClassification), ids, mask)
    model = tiny_model(BertForSequenceClassification)
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    assert model.bert.encoder.gradient_checkpointing
    model.train()
    for m in model.modules():  # compare without dropout noise
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    checkpointed = _grads(model, ids, mask)
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name


# --- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_half_precision_runs_in_its_own_dtype(dtype, backend, no_grad):
    model = tiny_model(BertForMaskedLM, attn_implementation=backend)
    ids, mask = random_batch([9, 4])
    reference = model(ids, mask).logits
    out = model.to(dtype)(ids, mask).logits
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert (out.float() - reference)[mask.bool()].abs().max() < 0.1


# --- config, errors and loading ---------------------------------------------------------------

def test_config_accepts_every_field_of_the_original(tmp_path, parity_a):
    original = json.loads((parity_a.dir / "config.json").read_text())
    config = BertConfig(**original)
    assert config.hidden_act == original["hidden_act"] and config.hidden_size == original["hidden_size"]
    # fields the model ignores (no position table, no cache) are read without error but never kept or written
    ignored = ("alibi_starting_size", "max_position_embeddings", "position_embedding_type", "use_cache")
    assert set(ignored) <= set(original)
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert not set(ignored) & set(written) and not any(hasattr(config, k) for k in ignored[:3])
    assert not set(ignored) & set(json.loads((REPO_ROOT / "config.json").read_text()))
    assert config.model_type == "dnabert2"
    assert config.pad_token_id == 3
    assert config.auto_map["AutoModel"] == "modeling_bert.BertModel"


@pytest.mark.parametrize("field,value", [("classifier_pooling", "max"), ("attn_implementation", "flash")])
def test_config_rejects_unknown_choices(field, value):
    with pytest.raises(ValueError, match=field):
        BertConfig(**{field: value})


def test_unknown_attn_implementation_is_refused(saved_parity_models):
    with pytest.raises(ValueError, match="attn_implementation"):
        AutoModel.from_pretrained(saved_parity_models("cfg_a", "cls"), trust_remote_code=True, attn_implementation="flash")


def test_triton_name_is_accepted_by_from_pretrained(saved_parity_models):
    model = AutoModel.from_pretrained(saved_parity_models("cfg_a", "cls"), trust_remote_code=True, attn_implementation="triton")
    assert model.config._attn_implementation == "triton"


@pytest.mark.skipif(not TRITON_AVAILABLE, reason="needs triton installed")
def test_triton_on_cpu_tensors_outside_the_interpreter_is_refused(monkeypatch):
    model = tiny_model(attn_implementation="triton")
    monkeypatch.setattr(bert_attention, "TRITON_INTERPRET", False)  # read once, at import of flash_attn_triton
    ids, mask = random_batch([4])
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        model(ids, mask)


@pytest.mark.skipif(TRITON_AVAILABLE, reason="checks the environment without triton")
def test_triton_backend_without_triton_installed_says_so():
    model = tiny_model(attn_implementation="triton")
    ids, mask = random_batch([4])
    with pytest.raises(ImportError, match="needs the `triton` package"):
        model(ids, mask)


def test_loading_without_trust_remote_code_fails_loudly(saved_parity_models):
    with pytest.raises(ValueError, match="trust_remote_code|dnabert2"):
        AutoConfig.from_pretrained(saved_parity_models("cfg_a", "cls"), trust_remote_code=False)


def test_original_checkpoint_without_pooler_loads_with_a_fresh_pooler(tmp_path, parity_a, no_grad):
    from safetensors.torch import save_file

    BertForSequenceClassification(parity_a.config()).save_pretrained(tmp_path)  # code files and our config
    mlm_weights = parity_a.state_dict("mlm")  # the original checkpoint layout: no pooler, no classifier
    save_file(mlm_weights, tmp_path / "model.safetensors")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    state = model.state_dict()
    for key, value in mlm_weights.items():
        if key.startswith("bert."):
            assert torch.equal(state[key], value), key
    pooler = state["bert.pooler.dense.weight"]
    assert abs(float(pooler.std()) - parity_a.config().initializer_range) < 0.002, "drawn like the other fresh weights"
    assert torch.equal(state["bert.pooler.dense.bias"], torch.zeros_like(state["bert.pooler.dense.bias"]))
    i = parity_a.inputs
    out = model.bert(i["input_ids"], i["attention_mask"]).last_hidden_state
    assert (out - parity_a.outputs["last_hidden_state"])[parity_a.real].abs().max() <= 1e-5


def test_saved_folder_holds_code_and_loads_in_a_fresh_offline_process(tmp_path):
    model = tiny_model(BertForMaskedLM)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert set(config["auto_map"]) == {
        "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
        "AutoModelForTokenClassification",
    }
    for name in config["auto_map"].values():
        assert (tmp_path / (name.split(".")[0] + ".py")).exists()
    script = (
        "import sys, torch; from transformers import AutoModelForMaskedLM;"
        "m = AutoModelForMaskedLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval();"
        "print(float(m(torch.tensor([[1, 7, 9, 2]])).logits.sum()))"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    with torch.no_grad():
        expected = float(model(torch.tensor([[1, 7, 9, 2]])).logits.sum())
    assert abs(float(result.stdout.strip().splitlines()[-1]) - expected) < 1e-3


def test_modeling_file_imports_every_remote_code_module_directly():
    """transformers 4.x copies only the direct relative imports of a local remote-code file."""
    import re

    def relative_imports(name):
        text = (REPO_ROOT / f"{name}.py").read_text()
        return set(re.findall(r"^\s*from\s+\.(\w+)\s+import", text, flags=re.M))

    reachable, frontier = set(), {"modeling_bert"}
    while frontier:
        name = frontier.pop()
        new = relative_imports(name) - reachable
        reachable |= new
        frontier |= new
    assert reachable <= relative_imports("modeling_bert"), reachable - relative_imports("modeling_bert")
