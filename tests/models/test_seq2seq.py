"""The encoder–decoder Transformer: cached decoding equals the full teacher-forced forward, padding does not leak,
and a tiny model learns to reverse digit sequences (greedy decoding, held-out sequences)."""

import pytest
import torch
import torch.nn.functional as F

from nlplab.data.batching import pad_batch
from nlplab.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer

PAD, BOS, EOS, DIGIT0 = 0, 1, 2, 3


def small(impl="fused", norm="post"):
    cfg = Seq2SeqConfig(src_vocab_size=13, tgt_vocab_size=13, d_model=32, num_heads=4, d_ff=64, num_encoder_layers=2,
                        num_decoder_layers=2, dropout=0.0, max_positions=16, norm=norm, impl=impl)
    return Seq2SeqTransformer(cfg)


def reversal_batch(n, generator):
    """n random sequences of 4-6 digits: (src, src_mask, decoder input BOS + reversed, target reversed + EOS)."""
    seqs = [(torch.randint(0, 10, (int(torch.randint(4, 7, (1,), generator=generator)),), generator=generator) + DIGIT0).tolist()
            for _ in range(n)]
    src, lengths = pad_batch(seqs, PAD)
    tgt_in, _ = pad_batch([[BOS, *s[::-1]] for s in seqs], PAD)
    tgt_out, _ = pad_batch([[*s[::-1], EOS] for s in seqs], PAD)
    return src, torch.arange(src.shape[1]) < lengths[:, None], tgt_in, tgt_out


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cached_decoding_equals_teacher_forcing_and_impls_agree(norm):
    torch.manual_seed(0)
    model = small(norm=norm).double().eval()
    manual = small("manual", norm).double().eval()
    manual.load_state_dict(model.state_dict())
    src, mask, tgt_in, _ = reversal_batch(3, torch.Generator().manual_seed(0))
    full = model(src, mask, tgt_in)
    torch.testing.assert_close(manual(src, mask, tgt_in), full, rtol=1e-10, atol=1e-10)
    memory, cache, steps = model.encode(src, mask), None, []
    for t in range(tgt_in.shape[1]):
        logits, cache = model.decode(tgt_in[:, t:t + 1], memory, mask, cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    alone = model(src[1:2, :int(mask[1].sum())], mask[1:2, :int(mask[1].sum())], tgt_in[1:2])
    torch.testing.assert_close(alone, full[1:2], rtol=1e-10, atol=1e-10)


def test_learns_to_reverse_digit_sequences():
    torch.manual_seed(0)
    model = small()
    steps, train, seen = 600, torch.Generator().manual_seed(1), set()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / 50) * (1 - s / steps))
    for _ in range(steps):
        src, mask, tgt_in, tgt_out = reversal_batch(64, train)
        seen.update(map(tuple, src.tolist()))
        loss = F.cross_entropy(model(src, mask, tgt_in).transpose(1, 2), tgt_out, ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    src, mask, _, tgt_out = reversal_batch(400, torch.Generator().manual_seed(2))
    held_out = torch.tensor([tuple(row) not in seen for row in src.tolist()])
    assert held_out.sum() > 250
    out = model.eval().greedy_decode(src[held_out], mask[held_out], BOS, EOS, max_len=8)
    width = max(out.shape[1], tgt_out.shape[1])
    out, tgt_out = F.pad(out, (0, width - out.shape[1])), F.pad(tgt_out[held_out], (0, width - tgt_out.shape[1]))
    accuracy = (out == tgt_out).all(1).float().mean().item()
    assert accuracy >= 0.9, f"exact match {accuracy:.3f} on {int(held_out.sum())} held-out sequences"
