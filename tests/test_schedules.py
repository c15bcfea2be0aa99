"""Learning-rate schedules and the LearningRateScheduler callback (hooks called by hand)."""

import math

import pytest

from handprop.callbacks import Callback, History
from handprop.optimizers import SGD, Adam
from handprop.schedules import CosineDecay, ExponentialDecay, LearningRateScheduler, StepDecay


def test_step_decay():
    schedule = StepDecay(0.1, drop=0.5, every=10)
    assert schedule(0) == schedule(9) == 0.1
    assert schedule(10) == pytest.approx(0.05)
    assert schedule(25) == pytest.approx(0.025)
    assert StepDecay(1.0)(20) == 0.25  # defaults drop=0.5, every=10
    with pytest.raises(ValueError):
        StepDecay(0.1, every=0)


def test_exponential_decay():
    schedule = ExponentialDecay(0.1, gamma=0.9)
    assert schedule.values(3) == pytest.approx([0.1, 0.09, 0.081])
    with pytest.raises(ValueError):
        schedule(-1)


def test_cosine_decay():
    schedule = CosineDecay(0.1, epochs=10, min_lr=0.001)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(5) == pytest.approx(0.001 + 0.099 / 2)
    assert schedule(10) == schedule(50) == pytest.approx(0.001)
    values = schedule.values(11)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert "CosineDecay(initial_lr=0.1" in repr(schedule)


class FakeModel:
    def __init__(self, optimizer):
        self.optimizer = optimizer


def run_epochs(callbacks, model, epochs):
    """What fit does with callbacks, without the training."""
    for cb in callbacks:
        cb.set_model(model)
        cb.on_train_begin({})
    for epoch in range(epochs):
        logs = {}
        for cb in callbacks:
            cb.on_epoch_begin(epoch, logs)
        seen = model.optimizer.lr
        logs["loss"] = 1.0 / (epoch + 1)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        assert logs["lr"] == seen
    for cb in callbacks:
        cb.on_train_end({})


def test_scheduler_sets_lr_each_epoch_and_logs_it():
    model = FakeModel(SGD(lr=1.0, momentum=0.9))
    scheduler = LearningRateScheduler(StepDecay(0.1, drop=0.5, every=2))
    assert isinstance(scheduler, Callback)
    for order in ("scheduler first", "history first"):  # fit passes one logs dict to begin and end
        history = History()
        model.optimizer.lr = 1.0
        run_epochs([scheduler, history] if order == "scheduler first" else [history, scheduler], model, epochs=5)
        assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025]), order
    assert model.optimizer.lr == pytest.approx(0.025) and isinstance(model.optimizer.lr, float)


def test_scheduler_accepts_plain_and_keras_two_argument_functions(capsys):
    model = FakeModel(Adam(lr=0.01))
    run_epochs([LearningRateScheduler(lambda epoch: 0.01 / (1 + epoch))], model, epochs=3)
    assert model.optimizer.lr == pytest.approx(0.01 / 3)
    model = FakeModel(Adam(lr=0.01))
    run_epochs([LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)], model, epochs=3)
    assert model.optimizer.lr == pytest.approx(0.01 / 8)
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.00125" in capsys.readouterr().out


def test_scheduler_errors():
    with pytest.raises(TypeError):
        LearningRateScheduler(0.1)
    scheduler = LearningRateScheduler(lambda epoch: math.nan)
    scheduler.set_model(FakeModel(SGD()))
    with pytest.raises(ValueError, match="finite"):
        scheduler.on_epoch_begin(0, {})
    scheduler.set_model(FakeModel(None))
    with pytest.raises(AttributeError, match="compile"):
        scheduler.on_epoch_begin(0, {})
