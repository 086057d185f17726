"""LoRA: y = W x + b + (α/r)·B A dropout(x), forward and gradient equal to peft's LoRA layer in float64 (dropout
included); merge() and unmerge(); 2·d·r parameters per adapted d×d matrix; k, v and qkv as parts of attention;
bad options."""

import warnings

import peft
import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.nn.layers import Linear
from nlplab.peft import LoraConfig, PromptTuningConfig, build_config, get_peft_model
from nlplab.peft.lora import LoraLinear, LoraUpdate

warnings.filterwarnings("ignore", module="peft")


@pytest.mark.parametrize("training", [False, True])
def test_lora_layer_equals_peft_forward_and_gradient_float64(training):
    torch.manual_seed(0)
    theirs = peft.get_peft_model(torch.nn.Sequential(torch.nn.Linear(12, 10)).double(),
                                 peft.LoraConfig(r=3, lora_alpha=6, lora_dropout=0.3, target_modules=["0"]))
    base = Linear(12, 10).double()
    layer = theirs.base_model.model[0]
    with torch.no_grad():
        base.weight.copy_(layer.base_layer.weight)
        base.bias.copy_(layer.base_layer.bias)
        layer.lora_B.default.weight.normal_()
    ours = LoraLinear(base, dropout=0.3)
    ours.lora["0"] = LoraUpdate(12, 0, 10, r=3, alpha=6, dtype=torch.float64)
    with torch.no_grad():
        ours.lora["0"].A.copy_(layer.lora_A.default.weight)
        ours.lora["0"].B.copy_(layer.lora_B.default.weight)
    ours.train(training), theirs.train(training)
    x = torch.randn(5, 12, dtype=torch.float64)
    torch.manual_seed(1)
    y = ours(x)
    torch.manual_seed(1)
    expected = theirs(x)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    if not training:
        torch.testing.assert_close(y, base(x) + 2 * x @ ours.lora["0"].A.T @ ours.lora["0"].B.T, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(y)
    (y * probe).sum().backward()
    (expected * probe).sum().backward()
    torch.testing.assert_close(ours.lora["0"].A.grad, layer.lora_A.default.weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.lora["0"].B.grad, layer.lora_B.default.weight.grad, rtol=1e-10, atol=1e-12)


def test_merge_and_unmerge_keep_the_outputs_float64(tiny_classifier, batch):
    model = get_peft_model(tiny_classifier().double().eval(), LoraConfig(r=4, target_modules=("qkv", "out", "fc1")))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
    weights = {n: t.clone() for n, t in model.state_dict().items()}
    unmerged = model(batch)[1]
    model.merge()
    kv = "model.encoder.blocks.0.attn.kv.base.weight"
    assert (model.state_dict()[kv] - weights[kv]).abs().max() > 0.1
    torch.testing.assert_close(model(batch)[1], unmerged, rtol=0, atol=1e-6)
    model.merge()
    torch.testing.assert_close(model(batch)[1], unmerged, rtol=0, atol=1e-6)
    model.unmerge()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=1e-12)
    plain = model.merge_and_unload()
    assert not any("lora" in n for n in plain.state_dict())
    torch.testing.assert_close(plain(batch)[1], unmerged, rtol=0, atol=1e-6)


def test_lora_count_is_2dr_per_adapted_square_matrix(tiny_classifier):
    d, r, layers = 16, 4, 2
    for targets, matrices in [(("q", "v"), 2), (("q", "k", "v", "out"), 4)]:
        model = get_peft_model(tiny_classifier(), LoraConfig(r=r, target_modules=targets))
        assert model.trainable_parameters()[0] == layers * matrices * 2 * d * r
    fused = get_peft_model(tiny_classifier(), LoraConfig(r=r, target_modules=("qkv",)))
    assert fused.trainable_parameters()[0] == layers * r * (d + 3 * d)  # one A (r, d), one B (3d, r)
    assert fused.model.encoder.blocks[0].attn.q.lora.qkv.A is fused.model.encoder.blocks[0].attn.kv.lora.qkv.A


def test_k_and_v_adapt_their_rows_of_kv_only(tiny_classifier):
    model = get_peft_model(tiny_classifier().eval(), LoraConfig(r=2, target_modules=("k",)))
    kv = model.model.encoder.blocks[0].attn.kv
    with torch.no_grad():
        kv.lora.k.B.normal_()
    x = torch.randn(3, 16)
    delta = kv(x) - kv.base(x)
    assert delta[:, :16].abs().min() > 0 and delta[:, 16:].abs().max() == 0


def test_summary_line(tiny_classifier):
    model = get_peft_model(tiny_classifier(), LoraConfig(r=2, target_modules=("q", "v"), modules_to_save=("head",)))
    trainable, total = model.trainable_parameters()
    assert trainable == 2 * 2 * 2 * 16 * 2 + 16 * 3 + 3
    assert model.summary() == f"trainable {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)"
    assert total == sum(p.numel() for p in model.parameters())


def test_bad_options_fail_with_the_fix(tiny_classifier):
    with pytest.raises(ConfigError, match="rank r must be at least 1"):
        LoraConfig(r=0)
    with pytest.raises(ConfigError, match=r"its Linear layers are: encoder\.blocks\.\*\.attn\.q, .*head"):
        get_peft_model(tiny_classifier(), LoraConfig(target_modules=("query",)))
    with pytest.raises(ConfigError, match="modules_to_save 'classifier' names no module.*head"):
        get_peft_model(tiny_classifier(), LoraConfig(modules_to_save=("classifier",)))
    with pytest.raises(ConfigError, match="unknown PEFT method"):
        build_config("ia3")
    with pytest.raises(ConfigError, match="unknown PEFT option rank"):
        build_config("lora", rank=4)
    cfg = build_config("lora", lora_r=2, lora_targets="q, v,out", num_virtual_tokens=4, adapter_size=None)
    assert (cfg.r, cfg.alpha, cfg.target_modules) == (2, 16.0, ("q", "v", "out"))
    assert build_config("prefix", lora_r=2, num_virtual_tokens=4, prefix_projection=8).projection == 8
    assert build_config("adapter", lora_targets="q,v").target_modules == ("attn.out", "ffn.fc2")  # a LoRA option
    with pytest.raises(ConfigError, match="only LoRA folds"):
        get_peft_model(tiny_classifier(), PromptTuningConfig(num_virtual_tokens=2)).merge()
