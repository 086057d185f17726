"""`nlplab tune`: a tiny real study, the resume of an interrupted one, pruning, the grid, and bad input."""

import json

import pytest
import yaml

from nlplab.cli import main
from nlplab.errors import ConfigError
from nlplab.lab.tune import Param, parse_train_flags, read_space, search_grid, tune
from nlplab.train.config import load_config

RECIPE = {"model": "bow", "epochs": 2, "batch_size": 16, "embed_dim": 16, "hidden_size": 16, "device": "cpu"}


@pytest.fixture
def files(tmp_path, tiny_tsv):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**RECIPE, "data": str(tiny_tsv)}))
    (tmp_path / "space.yaml").write_text("lr: {low: 1.0e-3, high: 3.0e-2, log: true}\ndropout: {low: 0.0, high: 0.5}\n"
                                         "embed_dim: {choices: [8, 16]}\n")
    return tmp_path


def fake_train(score, calls=None, interrupt_at=None):
    """A stand-in for trainer.train: dev accuracy score(cfg, epoch) per epoch, no files."""
    def train_fn(cfg, run_dir, on_epoch_end=None, progress=None):
        if calls is not None:
            calls.append(cfg)
            if interrupt_at is not None and len(calls) == interrupt_at:
                raise KeyboardInterrupt
        for epoch in range(1, cfg.epochs + 1):
            on_epoch_end(epoch, {"epoch": epoch, "val_loss": 1.0, "val_accuracy": score(cfg, epoch)})
        return {"dev": {"accuracy": score(cfg, cfg.epochs)}, "test": {"accuracy": 0.5}, "epochs_run": cfg.epochs}
    return train_fn


def test_tiny_study_end_to_end(files, capsys):
    study = files / "study"
    code = main(["tune", "--config", str(files / "recipe.yaml"), "--space", str(files / "space.yaml"), "--search", "random",
                 "--trials", "2", "--out", str(study), "--no-progress", "--", "--epochs", "2", "--l2=0.0"])
    assert code == 0
    report = json.loads((study / "trials.json").read_text())
    assert [t["state"] for t in report["trials"]] == ["complete", "complete"] and report["metric"] == "accuracy"
    for trial in report["trials"]:
        run = study / trial["run"]
        assert (run / "config.yaml").is_file() and (run / "model.safetensors").is_file()
        assert json.loads((run / "metrics.json").read_text())["dev"]["accuracy"] == trial["dev accuracy"]
    best = load_config(study / "best.yaml", {})
    assert best.lr == report["best"]["params"]["lr"] and best.epochs == 2 and best.data.endswith("tiny.tsv")
    assert (study / "study.db").is_file() and (study / "history.png").stat().st_size > 0
    assert (study / "importances.png").is_file()
    assert "best: trial" in capsys.readouterr().out


def test_interrupted_study_resumes_where_it_stopped(tmp_path):
    space = {"lr": Param("lr", 1e-3, 1e-1, log=True)}
    calls = []
    score = lambda cfg, epoch: 1 - abs(cfg.lr - 0.01)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        tune(None, space, "random", 4, tmp_path, train_fn=fake_train(score, calls, interrupt_at=3), overrides={"epochs": 2}, prune=False)
    assert len(calls) == 3
    interrupted = calls[-1].lr
    more = []
    result = tune(None, space, "random", 4, tmp_path, train_fn=fake_train(score, more), overrides={"epochs": 2}, prune=False)
    states = [row["state"] for row in result.rows]
    assert states.count("complete") == 4 and states.count("fail") == 1
    assert len(more) == 2 and more[0].lr == interrupted  # the cut trial again, with its parameters, then one new
    assert result.study.trials[3].user_attrs["retry_of"] == 2
    assert tune(None, space, "random", 4, tmp_path, train_fn=fake_train(score, more), overrides={"epochs": 2}, prune=False).best is not None
    assert len(more) == 2  # nothing left to do


def test_trials_falling_behind_are_pruned(tmp_path):
    space = {"dropout": Param("dropout", choices=(0.0, 0.1, 0.2, 0.3, 0.4, 0.45))}
    result = tune(None, space, "grid", 6, tmp_path, overrides={"epochs": 4},
                  train_fn=fake_train(lambda cfg, epoch: 0.9 - cfg.dropout))
    states = {row["dropout"]: row["state"] for row in result.rows}
    assert sorted(states) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.45]  # the grid, each point once
    assert result.best["params"]["dropout"] == 0.0
    later = [row for row in result.rows if row["trial"] >= 3]
    assert all(row["state"] == ("pruned" if row["dropout"] > 0.1 else row["state"]) for row in later)
    assert any(row["state"] == "pruned" and row["epochs"] == 2 for row in result.rows)


@pytest.mark.parametrize("search", ["bayes", "gp"])
def test_model_based_searches_stay_in_the_space(tmp_path, search):
    space = {"lr": Param("lr", 1e-4, 1e-1, log=True), "embed_dim": Param("embed_dim", 8, 64), "model": Param("model", choices=("bow", "rnn"))}
    result = tune(None, space, search, 8, tmp_path, overrides={"epochs": 1}, prune=False,
                  train_fn=fake_train(lambda cfg, epoch: -abs(cfg.lr - 3e-3) - abs(cfg.embed_dim - 40) / 100))
    rows = result.rows
    assert len(rows) == 8 and all(1e-4 <= r["lr"] <= 1e-1 and 8 <= r["embed_dim"] <= 64 and isinstance(r["embed_dim"], int)
                                  and r["model"] in ("bow", "rnn") for r in rows)


def test_grid_values():
    grid = search_grid({"lr": Param("lr", 1e-4, 1e-2, log=True), "layers": Param("layers", 1, 3),
                        "model": Param("model", choices=("bow", "rnn"))}, trials=18)
    assert grid["model"] == ["bow", "rnn"] and grid["layers"] == [1, 2, 3]
    assert grid["lr"] == pytest.approx([10 ** (-4 + 1 / 3), 1e-3, 10 ** (-2 - 1 / 3)])  # centres of 3 log cells
    assert search_grid({"dropout": Param("dropout", 0.0, 0.5)}, trials=2)["dropout"] == pytest.approx([0.125, 0.375])


def test_train_flags_override_the_recipe_as_in_nlplab_train():
    flags = parse_train_flags(["--", "--lr", "1e-3", "--kernel-sizes=2,3", "--crf", "--early-stop", "none"])
    assert flags == {"lr": "1e-3", "kernel_sizes": "2,3", "crf": True, "early_stop": "none"}
    cfg = load_config(None, flags)  # converted to the options' types as `nlplab train` converts its flags
    assert (cfg.lr, cfg.kernel_sizes, cfg.crf, cfg.early_stop) == (1e-3, [2, 3], True, None)
    assert parse_train_flags(["--no-crf", "--epochs", "3"]) == {"crf": False, "epochs": "3"}
    for bad, message in ((["--epoch", "3"], "not an option"), (["--lr"], "needs a value"), (["3"], "expected a flag")):
        with pytest.raises(ConfigError, match=message):
            parse_train_flags(bad)
    with pytest.raises(ConfigError, match="--epochs must be an integer"):
        load_config(None, parse_train_flags(["--epochs", "x"]))


@pytest.mark.parametrize("space, message", [
    ("learning_rate: {low: 0.1, high: 0.2}", "learning_rate: not an option of `nlplab train`"),
    ("lr: {low: 0.1, high: 0.1}", "lr: empty range"),
    ("embed_dim: {choices: []}", "choices must be a non-empty list"),
    ("lr: {low: 0.0, high: 0.1, log: true}", "log range needs low > 0"),
    ("lr: 0.1", "write {low: A, high: B}"),
])
def test_bad_space_is_one_line_exit_2(tmp_path, capsys, space, message):
    (tmp_path / "space.yaml").write_text(space)
    with pytest.raises(ConfigError, match=message):
        read_space(tmp_path / "space.yaml")
    assert main(["tune", "--space", str(tmp_path / "space.yaml"), "--trials", "2", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "space.yaml" in err


def test_zero_trials_and_changed_settings_are_refused(files, capsys):
    args = ["tune", "--space", str(files / "space.yaml"), "--out", str(files / "s")]
    assert main(args + ["--trials", "0"]) == 2 and "--trials and --jobs must be >= 1" in capsys.readouterr().err
    space = {"lr": Param("lr", 1e-3, 1e-1, log=True)}
    tune(None, space, "random", 1, files / "s2", train_fn=fake_train(lambda cfg, epoch: 0.5), overrides={"epochs": 1})
    with pytest.raises(ConfigError, match="holds a study with other settings \\(search\\)"):
        tune(None, space, "bayes", 1, files / "s2", train_fn=fake_train(lambda cfg, epoch: 0.5), overrides={"epochs": 1})


def test_shipped_space_is_the_search_labs():
    from pathlib import Path

    from nlplab.lab.search import space

    assert read_space(Path(__file__).parents[2] / "configs" / "chnsenticorp-space.yaml") == space(quick=False)
