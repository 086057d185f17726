"""EarlyStopping: patience, min_delta, modes, best weights, resumable state."""

from __future__ import annotations

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.optim import EarlyStopping


def _model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(-value)
    return model


def _run(stopper: EarlyStopping, values: list[float]) -> list[bool]:
    model = _model(0.0)
    decisions = []
    for epoch, value in enumerate(values):
        with torch.no_grad():
            model.weight.fill_(epoch)
        decisions.append(stopper.step(value, model))
    return decisions


def test_patience_counts_epochs_without_improvement():
    stopper = EarlyStopping(patience=3, mode="max")
    assert _run(stopper, [0.5, 0.6, 0.6, 0.59, 0.7, 0.1, 0.2, 0.3]) == [False] * 7 + [True]
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs, stopper.epoch) == (0.7, 5, 3, 8)


def test_min_delta_ignores_small_improvements():
    stopper = EarlyStopping(patience=2, mode="min", min_delta=0.1)
    assert _run(stopper, [1.0, 0.95, 0.85, 0.8, 0.76]) == [False, False, False, False, True]
    assert (stopper.best, stopper.best_epoch) == (0.85, 3)


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("min_delta", [0.0, 0.15])
def test_best_and_bad_epochs_follow_reduce_lr_on_plateau(mode, min_delta):
    torch.manual_seed(7)
    values = torch.randint(0, 10, (60,)).double().div(10).tolist()
    stopper = EarlyStopping(patience=4, mode=mode, min_delta=min_delta)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, patience=10**6, threshold=min_delta, threshold_mode="abs"
    )
    model = _model(0.0)
    for value in values:
        stop = stopper.step(value, model)
        plateau.step(value)
        assert (stopper.best, stopper.bad_epochs) == (plateau.best, plateau.num_bad_epochs)
        assert stop == (plateau.num_bad_epochs >= 4)


def test_nan_never_improves():
    stopper = EarlyStopping(patience=2, mode="min")
    assert _run(stopper, [float("nan"), 1.0, float("nan"), float("nan")]) == [False, False, False, True]
    assert stopper.best == 1.0


def test_restore_gives_back_weights_of_best_epoch():
    stopper = EarlyStopping(patience=5, mode="max")
    _run(stopper, [0.1, 0.9, 0.3, 0.2])
    model = _model(123.0)
    stopper.restore(model)
    assert stopper.best_epoch == 2
    torch.testing.assert_close(model.weight, torch.full((1, 2), 1.0, dtype=torch.float64), atol=0, rtol=0)
    assert all(t.device.type == "cpu" for t in stopper.best_state.values())


def test_best_state_is_a_copy():
    stopper = EarlyStopping(patience=1)
    model = _model(2.0)
    stopper.step(1.0, model)
    with torch.no_grad():
        model.weight.add_(5.0)
    stopper.restore(model)
    torch.testing.assert_close(model.weight, torch.full((1, 2), 2.0, dtype=torch.float64), atol=0, rtol=0)


def test_state_dict_round_trip_resumes_identically():
    torch.manual_seed(11)
    values = torch.rand(30).tolist()
    straight = EarlyStopping(patience=3, mode="min", min_delta=0.01)
    expected = _run(straight, values)
    first = EarlyStopping(patience=3, mode="min", min_delta=0.01)
    decisions = _run(first, values[:12])
    resumed = EarlyStopping(patience=3, mode="min", min_delta=0.01)
    resumed.load_state_dict(first.state_dict())
    model = _model(0.0)
    for epoch, value in enumerate(values[12:], start=12):
        with torch.no_grad():
            model.weight.fill_(epoch)
        decisions.append(resumed.step(value, model))
    assert decisions == expected
    assert resumed.state_dict()["best_epoch"] == straight.best_epoch and resumed.best == straight.best
    restored, reference = _model(0.0), _model(0.0)
    resumed.restore(restored)
    straight.restore(reference)
    torch.testing.assert_close(restored.state_dict(), reference.state_dict(), atol=0, rtol=0)


def test_restore_before_step_fails_clearly():
    with pytest.raises(RuntimeError, match="before any step"):
        EarlyStopping(patience=1).restore(_model(0.0))


@pytest.mark.parametrize("kwargs", [dict(patience=0), dict(patience=2, mode="best"), dict(patience=2, min_delta=-1.0)])
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        EarlyStopping(**kwargs)
