import itertools

import pytest
import torch
from torchcrf import CRF as TorchCRF

from nlplab.errors import ConfigError, DataError
from nlplab.nn.crf import CRF, bio_constraints

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_case(seed, batch=3, steps=4, tags=3, constraints=None):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    crf = CRF(tags, constraints).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    emissions = torch.randn(batch, steps, tags, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    mask = torch.arange(steps) < lengths[:, None]
    return crf, emissions, mask, lengths


def brute_force(crf, emissions, length):
    """Every tag sequence of one row and its score, straight from the definition."""
    start, transitions, end = crf.scores()
    paths, scores = [], []
    for path in itertools.product(range(crf.num_tags), repeat=length):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        s = s + sum(transitions[a, b] for a, b in itertools.pairwise(path))
        paths.append(path)
        scores.append(s)
    return paths, torch.stack(scores)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("constrained", [False, True])
def test_partition_and_viterbi_equal_brute_force(seed, constrained):
    tags = len(BIO) if constrained else 3
    crf, emissions, mask, lengths = random_case(seed, tags=tags, constraints=bio_constraints(BIO) if constrained else None)
    log_z = crf.log_partition(emissions, mask)
    best, best_score = crf.decode(emissions, mask)
    for b, n in enumerate(lengths.tolist()):
        paths, scores = brute_force(crf, emissions[b], n)
        assert log_z[b].item() == pytest.approx(torch.logsumexp(scores, 0).item(), abs=1e-9)
        assert best_score[b].item() == pytest.approx(scores.max().item(), abs=1e-9)
        assert tuple(best[b, :n].tolist()) == paths[int(scores.argmax())]
        assert (best[b, n:] == best[b, n - 1]).all()
        gold = torch.tensor(paths[seed % len(paths)])
        padded = torch.cat([gold, gold.new_zeros(emissions.shape[1] - n)])
        one = crf.score(emissions[b : b + 1], padded[None], mask[b : b + 1])
        assert one.item() == pytest.approx(scores[seed % len(paths)].item(), abs=1e-9)


def test_nll_gradient_equals_autograd_of_brute_force():
    crf, emissions, mask, lengths = random_case(7, batch=2, steps=4, tags=3)
    emissions.requires_grad_(True)
    tags = torch.randint(0, 3, mask.shape, generator=torch.Generator().manual_seed(1))
    ours = crf(emissions, tags, mask)
    grads = torch.autograd.grad(ours, [emissions, *crf.parameters()])
    reference = 0.0
    for b, n in enumerate(lengths.tolist()):
        paths, scores = brute_force(crf, emissions[b], n)
        reference = reference + torch.logsumexp(scores, 0) - scores[paths.index(tuple(tags[b, :n].tolist()))]
    expected = torch.autograd.grad(reference, [emissions, *crf.parameters()])
    assert ours.item() == pytest.approx(reference.item(), abs=1e-9)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_equals_pytorch_crf_forward_gradient_and_decode(seed):
    crf, emissions, mask, lengths = random_case(seed, batch=6, steps=9, tags=5)
    ref = TorchCRF(5, batch_first=True).double()
    with torch.no_grad():
        ref.start_transitions.copy_(crf.start)
        ref.end_transitions.copy_(crf.end)
        ref.transitions.copy_(crf.transitions)
    tags = torch.randint(0, 5, mask.shape, generator=torch.Generator().manual_seed(seed))
    e1, e2 = emissions.clone().requires_grad_(True), emissions.clone().requires_grad_(True)
    ours, theirs = crf(e1, tags, mask, reduction="mean"), -ref(e2, tags, mask, reduction="mean")
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-9)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(e1.grad, e2.grad, atol=1e-9, rtol=1e-9)
    for mine, other in ((crf.start, ref.start_transitions), (crf.end, ref.end_transitions), (crf.transitions, ref.transitions)):
        torch.testing.assert_close(mine.grad, other.grad, atol=1e-9, rtol=1e-9)
    best, _ = crf.decode(emissions, mask)
    assert [best[b, :n].tolist() for b, n in enumerate(lengths.tolist())] == ref.decode(emissions, mask)


def test_padding_does_not_change_a_row():
    crf, emissions, mask, lengths = random_case(3, batch=4, steps=7, tags=4)
    wide = torch.cat([emissions, torch.randn(4, 5, 4, dtype=torch.float64) * 100], dim=1)
    wide_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(crf.log_partition(wide, wide_mask), crf.log_partition(emissions, mask))
    for b, n in enumerate(lengths.tolist()):
        alone = crf.log_partition(emissions[b : b + 1, :n])
        torch.testing.assert_close(alone, crf.log_partition(emissions, mask)[b : b + 1])
        assert crf.decode(emissions[b : b + 1, :n])[0][0].tolist() == crf.decode(emissions, mask)[0][b, :n].tolist()


def test_bio_constrained_viterbi_never_emits_an_invalid_transition():
    start_ok, moves_ok, _ = bio_constraints(BIO)
    assert start_ok.tolist() == [True, True, False, True, False]
    assert moves_ok[BIO.index("B-PER"), BIO.index("I-PER")] and moves_ok[BIO.index("I-PER"), BIO.index("I-PER")]
    assert not moves_ok[BIO.index("O"), BIO.index("I-PER")] and not moves_ok[BIO.index("B-LOC"), BIO.index("I-PER")]
    torch.manual_seed(0)
    crf = CRF(len(BIO), bio_constraints(BIO))
    free = CRF(len(BIO))
    free.load_state_dict(crf.state_dict())
    emissions = torch.randn(64, 12, len(BIO)) * 5
    lengths = torch.randint(1, 13, (64,))
    mask = torch.arange(12) < lengths[:, None]
    invalid_free = 0
    for model, counts in ((crf, False), (free, True)):
        best, _ = model.decode(emissions, mask)
        for row, n in zip(best.tolist(), lengths.tolist()):
            row = row[:n]
            bad = (not start_ok[row[0]]) + sum(not moves_ok[a, b] for a, b in itertools.pairwise(row))
            if counts:
                invalid_free += bad
            else:
                assert bad == 0, [BIO[t] for t in row]
    assert invalid_free > 0  # the case is hard enough that an unconstrained CRF breaks the rules


def test_bad_input_is_reported():
    crf = CRF(3)
    with pytest.raises(DataError, match="shape"):
        crf.log_partition(torch.zeros(2, 4, 5))
    with pytest.raises(DataError, match="first step"):
        crf.decode(torch.zeros(2, 4, 3), torch.tensor([[True] * 4, [False] * 4]))
    with pytest.raises(ConfigError, match="BIO"):
        bio_constraints(["O", "B-PER", "X"])
