"""GPT loads a small randomly initialised Hugging Face GPT2LMHeadModel saved by transformers and reproduces its
logits and gradients; decoding with the KV cache equals the full forward."""

import pytest
import torch
import transformers

from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT, GPTConfig

IMPLS = ["fused", "manual"]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name:
                p.normal_(1 if name.endswith("weight") else 0, 0.3)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("impl", IMPLS)
def test_logits_match_gpt2_float32(hf_folder, impl):
    theirs = transformers.GPT2LMHeadModel.from_pretrained(hf_folder).eval()
    ours = GPT.from_pretrained(hf_folder, impl=impl).eval()
    ids = torch.randint(0, 100, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = ours(ids)
        expected = theirs(ids).logits
    assert logits.shape == (3, 20, 100)
    assert (logits - expected).abs().max() <= 1e-5


def test_logits_and_gradients_match_gpt2_float64(hf_folder):
    theirs = transformers.GPT2LMHeadModel.from_pretrained(hf_folder).double().eval()
    ours = GPT.from_pretrained(hf_folder).double().eval()
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    logits, _ = ours(ids)
    expected = theirs(ids).logits
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10)
    probe = torch.randn_like(logits)
    (logits * probe).sum().backward()
    (expected * probe).sum().backward()
    h = theirs.transformer.h
    pairs = [(ours.tokens.weight.grad, theirs.transformer.wte.weight.grad),
             (ours.positions.weight.grad, theirs.transformer.wpe.weight.grad),
             (ours.blocks[1].ffn.fc1.weight.grad, h[1].mlp.c_fc.weight.grad.T),
             (ours.blocks[0].attn.q.weight.grad, h[0].attn.c_attn.weight.grad[:, :64].T),
             (ours.blocks[0].attn.kv.bias.grad, h[0].attn.c_attn.bias.grad[64:]),
             (ours.blocks[1].attn_norm.weight.grad, h[1].ln_1.weight.grad)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_kv_cache_logits_equal_full_forward(impl):
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, impl=impl)).double().eval()
    ids = torch.randint(0, 50, (2, 10))
    full, _ = model(ids)
    logits, cache = model(ids[:, :4])
    steps = [logits]
    for t in range(4, 10):
        logits, cache = model(ids[:, t:t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    with pytest.raises(ConfigError, match="truncate"):
        model(ids[:, :7], cache)


def test_fused_and_manual_agree_and_init_is_gpt2s():
    torch.manual_seed(4)
    fused = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=4, n_head=2, n_embd=32)).double()
    manual = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=4, n_head=2, n_embd=32, impl="manual")).double()
    manual.load_state_dict(fused.state_dict())
    ids = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(manual(ids)[0], fused(ids)[0], rtol=1e-10, atol=1e-10)
    assert abs(fused.tokens.weight.std().item() - 0.02) < 0.002
    assert abs(fused.blocks[0].attn.out.weight.std().item() - 0.02 / 8 ** 0.5) < 0.001
    assert fused.blocks[0].ffn.fc1.bias.eq(0).all() and fused.final_norm.weight.eq(1).all()


def test_dense_gpt_has_zero_aux_loss_and_gpt2_parameter_names(hf_folder):
    model = GPT.from_pretrained(hf_folder)
    model(torch.randint(0, 100, (1, 5)))
    assert model.aux_loss.item() == 0.0
    assert not any("router" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_gpt_learns_a_toy_sequence_task(top_k):
    """Next token = current + 1 (mod 16) from a random start: the loss (LM + 0.01 · aux) falls well below its start."""
    torch.manual_seed(5)
    cfg = GPTConfig(vocab_size=16, block_size=12, n_layer=2, n_head=2, n_embd=32, moe_experts=4, moe_top_k=top_k)
    model = GPT(cfg)
    assert model.blocks[0].ffn.b1.eq(0).all()
    assert abs(model.blocks[0].ffn.w2.std().item() - 0.02 / 2) < 0.002
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        ids = (torch.randint(0, 16, (16, 1)) + torch.arange(12)) % 16
        logits, _ = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), ids[:, 1:].reshape(-1)) + 0.01 * model.aux_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    model(ids)
    routers = [block.ffn.router.weight for block in model.blocks]
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(model.aux_loss, routers))


def test_save_pretrained_is_the_inverse_of_from_pretrained(hf_folder, tmp_path):
    ours = GPT.from_pretrained(hf_folder).eval()
    with torch.no_grad():
        ours.blocks[0].attn.kv.weight.add_(0.1)  # a change to find again in c_attn's key and value columns
    ours.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max() <= 1e-5
    back = GPT.from_pretrained(tmp_path)
    assert all(torch.equal(t, back.state_dict()[k]) for k, t in ours.state_dict().items())
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, moe_experts=2)).save_pretrained(tmp_path / "moe")
