"""Each method, one training step: only its parameters (and the task head) change, all others stay bit-identical;
what each method trains; adapters start as the identity; virtual tokens keep padding and the KV cache exact; every
adapter saves and loads back (PEFT's layout, or nlplab's own for BitFit and adapters); bad input."""

import json

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.peft import (
    AdapterConfig,
    BitFitConfig,
    LoraConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptTuningConfig,
    QLoraConfig,
    get_peft_model,
)

HEAD = ("head",)
CONFIGS = {
    "lora": LoraConfig(r=2, target_modules=("q", "v"), dropout=0.1, modules_to_save=HEAD),
    "qlora": QLoraConfig(r=2, target_modules=("qkv", "fc2"), modules_to_save=HEAD),
    "bitfit": BitFitConfig(modules_to_save=HEAD),
    "adapter": AdapterConfig(size=4, modules_to_save=HEAD),
    "prompt": PromptTuningConfig(num_virtual_tokens=3, modules_to_save=HEAD),
    "prefix": PrefixTuningConfig(num_virtual_tokens=3, modules_to_save=HEAD),
    "prefix-mlp": PrefixTuningConfig(num_virtual_tokens=3, projection=8, modules_to_save=HEAD),
}
TRAINED = {  # what each method trains, besides the head
    "lora": (".lora.",), "qlora": (".lora.",), "bitfit": ("bias",), "adapter": (".adapter.", "norm."),
    "prompt": (".prompt.",), "prefix": (".prefix.",), "prefix-mlp": (".prefix.",),
}


def train_steps(model, batch, steps=2):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("method", CONFIGS)
def test_a_training_step_changes_only_the_methods_parameters(method, tiny_classifier, batch):
    model = get_peft_model(tiny_classifier(), CONFIGS[method])
    trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    assert trainable and all(n.startswith("model.head.") or any(k in n for k in TRAINED[method]) for n in trainable)
    assert any(n.startswith("model.head.") for n in trainable)
    before = {n: t.clone() for n, t in model.state_dict().items()}
    train_steps(model, batch)
    changed = {n for n, t in model.state_dict().items() if not torch.equal(t, before[n])}
    unused = {n for n, p in model.named_parameters(remove_duplicate=False) if p.grad is None}
    assert changed == trainable - unused
    assert all(n.startswith("model.encoder.pooler.") for n in trainable & unused)  # the classifier pools by the mean


def test_bitfit_trains_every_bias_and_nothing_else(tiny_classifier):
    model = get_peft_model(tiny_classifier(), BitFitConfig())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    assert "model.encoder.blocks.1.attn_norm.bias" in trainable and "model.encoder.blocks.1.attn.kv.bias" in trainable


def test_adapters_start_as_the_identity(tiny_classifier, batch):
    base = tiny_classifier().eval()
    expected = base(batch)[1]
    model = get_peft_model(base, AdapterConfig(size=4)).eval()
    assert torch.equal(model(batch)[1], expected)
    assert model.trainable_parameters()[0] == 2 * 2 * (2 * 16 * 4 + 4 + 16) + 2 * (2 * 2 * 16) + 2 * 16


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_virtual_tokens_see_through_padding(method, tiny_classifier):
    model = get_peft_model(tiny_classifier(), CONFIGS[method]).eval()
    encoder = model.model.encoder
    ids = torch.randint(1, 50, (2, 8), generator=torch.Generator().manual_seed(4))
    mask = torch.arange(8) < torch.tensor([[8], [3]])
    padded = ids.masked_fill(~mask, 0)
    out = encoder(padded, mask)
    assert out.shape == (2, 8, 16)
    torch.testing.assert_close(out[1, :3], encoder(padded[1:, :3])[0], rtol=1e-5, atol=1e-5)
    encoder.prompt, encoder.prefix = None, None
    assert (encoder(padded, mask) - out)[mask].abs().min() > 0


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_virtual_tokens_in_gpt_decode_with_the_kv_cache(method, tiny_gpt):
    config = PromptTuningConfig(num_virtual_tokens=3) if method == "prompt" else PrefixTuningConfig(num_virtual_tokens=3)
    model = get_peft_model(tiny_gpt().double().eval(), config)
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(5))
    full, _ = model(ids)
    logits, cache = model(ids[:, :4])
    steps = [logits]
    for t in range(4, 9):
        logits, cache = model(ids[:, t:t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    assert cache[0][0][0].shape[2] == 3 + 9
    with pytest.raises(ConfigError, match="truncate"):
        model(torch.zeros(1, 22, dtype=torch.long))


@pytest.mark.parametrize("method", CONFIGS)
def test_adapter_saves_and_loads_back(method, tiny_classifier, batch, tmp_path):
    model = get_peft_model(tiny_classifier(), CONFIGS[method])
    train_steps(model, batch, steps=3)
    model.eval()
    model.save_adapter(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                          "modules_to_save.safetensors"]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] in ("LORA", "PROMPT_TUNING", "PREFIX_TUNING", "NLPLAB_BITFIT", "NLPLAB_ADAPTER")
    loaded = PeftModel.from_pretrained(tiny_classifier(), tmp_path, quantize=method == "qlora").eval()
    assert loaded.saved.keys() == {"head"}
    torch.testing.assert_close(loaded(batch)[1], model(batch)[1], rtol=0, atol=1e-6)
    assert not torch.equal(tiny_classifier().eval()(batch)[1], model(batch)[1])


def test_lora_names_follow_transformers_where_they_exist(tiny_classifier, tmp_path):
    model = get_peft_model(tiny_classifier(), LoraConfig(r=2, target_modules=("q", "v", "head")))
    config, tensors = model.export()
    assert "base_model.model.encoder.layer.1.attention.self.value.lora_B.weight" in tensors
    assert "base_model.model.head.lora_A.weight" in tensors
    assert config["target_modules"][:2] == ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value"]
    assert config["task_type"] == "FEATURE_EXTRACTION" and config["fan_in_fan_out"] is False


def test_bad_input(tiny_classifier, tiny_gpt, tmp_path):
    bow = TextClassifier(ClassifierConfig(model="bow", vocab_size=50))
    with pytest.raises(ConfigError, match="prefix tuning needs a model with one transformer.*has 0"):
        get_peft_model(bow, PrefixTuningConfig())
    with pytest.raises(ConfigError, match="adapter target 'fc3' names no module.*encoder.blocks.\\*.ffn.fc2"):
        get_peft_model(tiny_classifier(), AdapterConfig(target_modules=("fc3",)))
    with pytest.raises(ConfigError, match="adapter_config.json: not found"):
        PeftModel.from_pretrained(tiny_classifier(), tmp_path)
    get_peft_model(tiny_gpt(), LoraConfig(r=2, target_modules=("qkv",))).save_adapter(tmp_path)
    with pytest.raises(ConfigError, match="does not have.*another base model"):
        PeftModel.from_pretrained(tiny_classifier(), tmp_path)
    get_peft_model(tiny_gpt(), PrefixTuningConfig(num_virtual_tokens=2)).save_adapter(tmp_path)
    with pytest.raises(ConfigError, match="prompt_embeddings of shape"):
        PeftModel.from_pretrained(TextClassifier(ClassifierConfig(model="transformer", vocab_size=50, bert={
            "vocab_size": 50, "hidden_size": 8, "num_layers": 2, "num_heads": 2, "intermediate_size": 8})), tmp_path)
