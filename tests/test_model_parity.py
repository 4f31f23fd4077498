"""Parity with the original DNABERT-2 code (fixtures in tests/fixtures/parity, see their README).

Models are loaded the way users load them: AutoModel* with trust_remote_code from a folder
written by save_pretrained."""

import pytest
import torch
from helpers import FIXTURES
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

ATOL = 1e-5
BACKENDS = ("eager", "sdpa")


def _load(auto_class, parity, saved_parity_models, head, backend):
    """A parity model the way users load it: Auto* + remote code, from a saved folder."""
    path = saved_parity_models(parity.name, head)
    return auto_class.from_pretrained(path, trust_remote_code=True, attn_implementation=backend).eval()


def _close(actual, expected, atol=ATOL):
    err = (actual - expected).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_encoder_matches_original(parity, saved_parity_models, backend):
    model = _load(AutoModel, parity, saved_parity_models, "cls", backend)
    assert model.config._attn_implementation == backend
    i = parity.inputs
    with torch.no_grad():
        out = model(input_ids=i["input_ids"], attention_mask=i["attention_mask"], token_type_ids=i["token_type_ids"])
    _close(out.last_hidden_state[parity.real], parity.outputs["last_hidden_state"][parity.real])
    assert torch.all(out.last_hidden_state[~parity.real] == 0), "padding positions must be exactly 0"
    _close(out.pooler_output, parity.outputs["pooled_output"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_lm_matches_original(parity, saved_parity_models, backend):
    model = _load(AutoModelForMaskedLM, parity, saved_parity_models, "mlm", backend)
    i = parity.inputs
    with torch.no_grad():
        labelled = model(
            input_ids=i["mlm_input_ids"], attention_mask=i["attention_mask"],
            token_type_ids=i["token_type_ids"], labels=i["mlm_labels"],
        )
        unlabelled = model(input_ids=i["input_ids"], attention_mask=i["attention_mask"])
    _close(labelled.loss, parity.outputs["mlm_loss"])
    assert labelled.logits.shape == parity.outputs["mlm_logits_at_labels"].shape  # only labelled rows
    _close(labelled.logits, parity.outputs["mlm_logits_at_labels"])
    row1 = parity.outputs["mlm_logits_row1"]
    _close(unlabelled.logits[1, : row1.shape[0]], row1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequence_classification_matches_original(parity, saved_parity_models, backend):
    model = _load(AutoModelForSequenceClassification, parity, saved_parity_models, "cls", backend)
    i = parity.inputs
    with torch.no_grad():
        out = model(input_ids=i["input_ids"], attention_mask=i["attention_mask"], labels=i["cls_labels"])
    _close(out.logits, parity.outputs["cls_logits"])
    _close(out.loss, parity.outputs["cls_loss"])


def test_alibi_slopes_follow_original_head_order(parity):
    from dnabert2.bert_attention import alibi_slopes

    expected = parity.outputs["alibi_slopes"]
    assert torch.equal(torch.tensor(alibi_slopes(expected.numel()), dtype=torch.float32), expected)


def test_layer_outputs_match_original_unpadded_layout(parity, no_grad):
    model = parity.model("cls")
    i = parity.inputs
    out = model.bert(i["input_ids"], i["attention_mask"], output_hidden_states=True)
    embeddings, *layers = out.hidden_states
    _close(embeddings[parity.real], parity.outputs["embedding_output"][parity.real])
    for n, layer in enumerate(layers):
        _close(layer[parity.real], parity.outputs[f"layer{n}_output_unpadded"])


# --- the published 117M size -------------------------------------------------------------------

def original_117m_state_dict_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the original DNABERT-2-117M MLM checkpoint, spelled out from its config.json."""
    h, i, v, t = config["hidden_size"], config["intermediate_size"], config["vocab_size"], config["type_vocab_size"]
    shapes = {
        "bert.embeddings.word_embeddings.weight": (v, h),
        "bert.embeddings.token_type_embeddings.weight": (t, h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}."
        shapes.update({
            p + "attention.self.Wqkv.weight": (3 * h, h),
            p + "attention.self.Wqkv.bias": (3 * h,),
            p + "attention.output.dense.weight": (h, h),
            p + "attention.output.dense.bias": (h,),
            p + "attention.output.LayerNorm.weight": (h,),
            p + "attention.output.LayerNorm.bias": (h,),
            p + "mlp.gated_layers.weight": (2 * i, h),  # GeGLU: gate and value in one matrix, no bias
            p + "mlp.wo.weight": (h, i),
            p + "mlp.wo.bias": (h,),
            p + "mlp.layernorm.weight": (h,),
            p + "mlp.layernorm.bias": (h,),
        })
    shapes.update({
        "cls.predictions.transform.dense.weight": (h, h),
        "cls.predictions.transform.dense.bias": (h,),
        "cls.predictions.transform.LayerNorm.weight": (h,),
        "cls.predictions.transform.LayerNorm.bias": (h,),
        "cls.predictions.decoder.weight": (v, h),
        "cls.predictions.decoder.bias": (v,),
    })
    return shapes


def test_117m_preset_has_the_original_keys_and_shapes_on_the_meta_device():
    import json

    from dnabert2.configuration_bert import PRESETS, BertConfig
    from dnabert2.modeling_bert import BertForMaskedLM

    original = json.loads((FIXTURES / "original_117m" / "config.json").read_text())
    expected = original_117m_state_dict_shapes(original)
    assert len(expected) == 142
    config = BertConfig(**PRESETS["dnabert2-117m"])  # what pretrain.py --model_config dnabert2-117m builds
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                  "type_vocab_size", "hidden_act", "layer_norm_eps", "attention_probs_dropout_prob"):
        assert getattr(config, field) == original[field], field
    with torch.device("meta"):
        model = BertForMaskedLM(config)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(117e6, rel=0.01)
