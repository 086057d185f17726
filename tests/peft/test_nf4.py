"""NF4 by hand is bit-identical to bitsandbytes on the CPU (code values, packed bytes, absmax, the double-quantisation
state, dequantised weights) and holds against a float reference; Linear4bit dequantises on the fly; QLoRA trains
only its LoRA weights; the memory report."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from nlplab.errors import ConfigError
from nlplab.peft import Linear4bit, QLoraConfig, get_peft_model, memory_report
from nlplab.peft.nf4 import (
    DYNAMIC,
    LOOKUP_SIZE,
    NF4,
    dequantize_nf4,
    nearest_code_table,
    pack,
    quantize_4bit,
    quantize_8bit,
    quantize_nf4,
    unpack,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import bitsandbytes.functional as bnb


def test_code_values_equal_bitsandbytes_and_the_normal_quantiles():
    assert torch.equal(NF4, bnb.get_4bit_type("nf4", device="cpu"))
    assert torch.equal(DYNAMIC, bnb.create_dynamic_map())
    assert NF4[0] == -1 and NF4[7] == 0 and NF4[15] == 1 and (NF4.diff() > 0).all()
    normal = torch.distributions.Normal(0.0, 1.0)
    positive = normal.icdf(torch.linspace(0.9677083, 0.5, 9, dtype=torch.float64)[:-1])
    torch.testing.assert_close(NF4[8:].double().flip(0), positive / positive[0], rtol=0, atol=2e-7)


@pytest.mark.parametrize("shape", [(256, 512), (100, 38), (7,)])
def test_quantized_state_and_dequantized_weights_are_bit_identical_to_bitsandbytes(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.05
    packed, state = bnb.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
    ours = quantize_nf4(w)
    assert torch.equal(ours.packed, packed.flatten())
    assert torch.equal(ours.absmax, state.absmax) and torch.equal(ours.offset, state.offset)
    assert torch.equal(ours.absmax2, state.state2.absmax) and state.state2.blocksize == 256
    if shape[-1] % 2 == 0:  # bitsandbytes dequantises odd rows with a fallback that takes seconds to torch.compile
        assert torch.equal(dequantize_nf4(ours), bnb.dequantize_4bit(packed, state))


def test_four_bit_codes_are_the_nearest_nf4_values():
    x = torch.randn(64 * 50, generator=torch.Generator().manual_seed(1))
    codes, absmax = quantize_4bit(x)
    scaled = x / absmax.repeat_interleave(64)
    nearest = (scaled[:, None] - NF4).abs().argmin(1)
    assert torch.equal(codes.long(), nearest)
    assert torch.equal(unpack(pack(codes), x.numel()), codes)
    assert pack(torch.tensor([1, 2, 15], dtype=torch.uint8)).tolist() == [0x12, 0xF7]


def test_eight_bit_codes_equal_bitsandbytes_and_are_nearest_up_to_one_grid_step():
    """Every point of a fine sweep of [-1, 1] (each block led by 1.0, so absmax = 1), the code midpoints included."""
    sweep = torch.cat([torch.linspace(-1, 1, 255 * 600), (DYNAMIC[:-1] + DYNAMIC[1:]) / 2])
    sweep = sweep[: sweep.numel() // 255 * 255].view(-1, 255)
    x = torch.cat([torch.ones(sweep.shape[0], 1), sweep], 1).flatten()
    codes, absmax = quantize_8bit(x)
    theirs, state = bnb.quantize_blockwise(x, blocksize=256)
    assert torch.equal(codes, theirs) and torch.equal(absmax, state.absmax)
    gap = (x - DYNAMIC[codes.long()]).abs() - (x[:, None] - DYNAMIC).abs().min(1).values
    assert gap.max() <= 2 / (LOOKUP_SIZE - 1) and (gap > 0).float().mean() < 0.01
    assert nearest_code_table(DYNAMIC)[[0, -1]].tolist() == [0, 255]


def test_dequantisation_error_is_within_half_a_code_step():
    w = torch.randn(128, 64, generator=torch.Generator().manual_seed(2))
    absmax = w.flatten().view(-1, 64).abs().amax(1).repeat_interleave(64).view_as(w)
    half_step = (NF4.diff().max() / 2 + 0.01) * absmax
    assert ((dequantize_nf4(quantize_nf4(w)) - w).abs() <= half_step).all()


def test_linear4bit_dequantises_on_the_fly_and_counts_its_bytes():
    torch.manual_seed(3)
    linear = torch.nn.Linear(256, 128)
    layer = Linear4bit(linear)
    x = torch.randn(4, 256)
    packed, state = bnb.quantize_4bit(linear.weight.detach(), blocksize=64, compress_statistics=True, quant_type="nf4")
    assert torch.equal(layer(x), F.linear(x, bnb.dequantize_4bit(packed, state), linear.bias))
    assert not any(p.requires_grad for p in layer.parameters())
    n = 256 * 128
    assert layer.nbytes() == n // 2 + n // 64 + 4 * 2 + 4


def test_qlora_trains_only_lora_and_the_head_and_reports_memory(tiny_classifier, batch):
    model = get_peft_model(tiny_classifier(), QLoraConfig(r=2, target_modules=("q", "v"), modules_to_save=("head",)))
    linears = [m for m in model.modules() if isinstance(m, Linear4bit)]
    assert len(linears) == 2 * 5 + 1  # q, kv, out, fc1, fc2 in two blocks and the pooler; the head stays float
    before = {n: t.clone() for n, t in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {n for n, t in model.state_dict().items() if not torch.equal(t, before[n])}
    assert changed == {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    assert all(".lora." in n or n.startswith("model.head.") for n in changed)
    report = memory_report(model)
    assert report["nf4_weights"] == 2 * (16 * 16 * 4 + 2 * 16 * 32) + 16 * 16
    assert report["of_float32"] < 0.2 and report["bf16_bytes"] == 2 * report["nf4_weights"]


def test_qlora_on_a_layer_that_is_not_linear_is_an_error(tiny_classifier):
    with pytest.raises(ConfigError, match="Linear layers only"):
        get_peft_model(tiny_classifier(), QLoraConfig(quantize_modules=("tokens",)))
