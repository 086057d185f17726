"""The alignment stages in `nlplab train` on a tiny GPT: lm -> sft -> reward -> ppo (with ptx) and dpo, their runs in
use (generate, score, eval, predict), starting from a GPT-2 folder, exact --resume of every stage from a checkpoint
taken mid-epoch, and bad input through the CLI (one line, exit 2)."""

import json
import random
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from nlplab.cli import main
from nlplab.runs import load_run
from nlplab.text import build_tokenizer
from nlplab.train import trainer
from nlplab.train.config import TrainConfig
from nlplab.train.init_from import load_starting_lm
from nlplab.train.trainer import train

POS = ["这本书很好看，推荐", "质量不错，很满意", "服务热情，环境很好", "非常喜欢，值得购买", "房间干净，早餐丰富"]
NEG = ["质量太差了，失望", "服务很差，不推荐", "房间很脏，很吵", "一点也不好看，浪费钱", "物流太慢，包装破损"]
GOOD, BAD = "好评：", "差评："
WINDOW = 24


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def config(**values):
    base = {"device": "cpu", "window_size": WINDOW, "batch_size": 8, "epochs": 2, "lr": 3e-3, "seed": 0}
    return TrainConfig.from_dict({**base, **values})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data files, and an lm, an sft and a reward run trained on them (a few seconds in all)."""
    root = tmp_path_factory.mktemp("align")
    rng = random.Random(0)
    docs = ["".join(rng.choice(POS if rng.random() < 0.5 else NEG) for _ in range(2)) for _ in range(120)]
    (root / "docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    sft = [{"prompt": GOOD, "response": rng.choice(POS)} if k % 2 else {"prompt": BAD, "response": rng.choice(NEG)}
           for k in range(48)]
    pref = [{"prompt": GOOD, "chosen": rng.choice(POS), "rejected": rng.choice(NEG)} for _ in range(60)]
    files = {"docs": str(root / "docs.txt"), "sft": write_jsonl(root / "sft.jsonl", sft),
             "pref": write_jsonl(root / "pref.jsonl", pref), "prompts": write_jsonl(root / "prompts.jsonl", [{"prompt": GOOD}] * 20)}
    train(config(task="lm", data=files["docs"], hidden_size=16, heads=2, layers=1, min_freq=1, epochs=1), root / "lm",
          progress=False)
    train(config(task="sft", data=files["sft"], init_from=str(root / "lm")), root / "sft", progress=False)
    train(config(task="reward", data=files["pref"], init_from=str(root / "sft"), epochs=3, lr=1e-2), root / "reward",
          progress=False)
    return root, files


def ppo_config(root, files, **values):
    return config(task="ppo", data=files["prompts"], init_from=str(root / "sft"), reward_model=str(root / "reward"),
                  rollout_size=8, batch_size=4, ppo_epochs=2, max_new_tokens=10, **values)


def test_sft_puts_its_loss_on_the_response_tokens_only(runs):
    from nlplab.train.sft import SFTTask

    root, files = runs
    task = SFTTask(config(task="sft", data=files["sft"], init_from=str(root / "lm"), dropout=0.0), root / "x", False,
                   torch.device("cpu"))
    batch = next(task.batches("train"))
    loss, tokens, _ = task.step(batch)
    rows = task.rows["train"][: len(batch["ids"])]
    logits, _ = task.model(batch["ids"])
    logp = F.log_softmax(logits.double(), -1)
    total = sum(-logp[b, t - 1, ids[t]] for b, (ids, prompt) in enumerate(rows) for t in range(prompt, len(ids)))
    assert tokens == sum(len(ids) - prompt for ids, prompt in rows)
    assert_close(loss.double(), total / tokens, atol=1e-6, rtol=1e-6)


def test_stages_end_to_end_and_their_runs_in_use(runs, tmp_path):
    root, files = runs
    reward_metrics = json.loads((root / "reward" / "metrics.json").read_text())
    assert reward_metrics["dev"]["accuracy"] == 1.0 and reward_metrics["skipped_pairs"] == 0
    ppo = train(ppo_config(root, files, epochs=6, ptx_coef=0.5, ptx_data=files["docs"], lr=1e-2), tmp_path / "ppo",
                progress=False)
    rollouts = [json.loads(line) for line in (tmp_path / "ppo" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == ppo["rollouts"] == 12 and rollouts[0]["kl"] == 0.0 and rollouts[-1]["kl"] > 0
    mean_reward = lambda part: sum(r["reward"] for r in part) / len(part)  # noqa: E731
    assert mean_reward(rollouts[6:]) > mean_reward(rollouts[:6]) + 0.5
    assert {"reward", "kl", "length"} <= ppo["test"].keys()
    dpo = train(config(task="dpo", data=files["pref"], init_from=str(root / "sft"), beta=0.5, lr=1e-2), tmp_path / "dpo",
                progress=False)
    assert dpo["dev"]["accuracy"] == 1.0 and dpo["dev"]["margin"] > 0

    for run in (root / "sft", tmp_path / "ppo", tmp_path / "dpo"):
        policy = load_run(run, "cpu")
        assert policy.lm.encode(GOOD) == [policy.lm.eos_id, *policy.tokenizer.encode(GOOD)]
        assert policy.generate(GOOD, max_new_tokens=5)[0].text is not None
        assert policy.evaluate(files["docs"])["ppl"] > 1 and policy.score(["质量不错"])[0]["ppl"] > 1
    continued = load_starting_lm(str(tmp_path / "ppo"), WINDOW, 0.0).model.state_dict()
    assert all(torch.equal(continued[k], v) for k, v in load_run(tmp_path / "ppo", "cpu").model.state_dict().items())

    reward = load_run(root / "reward", "cpu")
    good, bad = reward.predict([f"{GOOD}\t{POS[0]}", (GOOD, NEG[0])])
    assert good["reward"] > bad["reward"] and not good["truncated"]
    whole = reward.evaluate(files["pref"])
    assert whole["examples"] == 60 and whole["accuracy"] > 0.9
    with pytest.raises(Exception, match="cannot generate"):
        reward.generate(GOOD)


def test_first_ppo_step_of_a_rollout_sees_the_rollout_policy(runs, tmp_path):
    """Dropout off and the same weights: log π of the first mini-batch equals the rollout's log π_old, so the ratio is
    1 and nothing is clipped; the rollout's rewards add up to r(x, y) − β Σ_t kl_t."""
    from nlplab.train.ppo import PPOTask

    root, files = runs
    task = PPOTask(ppo_config(root, files, dropout=0.3), tmp_path, False, torch.device("cpu"))
    task.model.train()
    batch = next(task.train_batches(torch.Generator().manual_seed(0)))
    _, _, extra = task.step(batch)
    assert extra["clip_fraction"] == 0.0
    from nlplab.models.lm import response_logprobs

    logp, _ = response_logprobs(task.model.policy, batch["ids"], batch["response_mask"])
    assert_close(logp, batch["old_logp"])


@pytest.fixture
def crash_after_a_checkpoint_mid_epoch(monkeypatch):
    """save_state that raises once it has written a checkpoint taken between two steps of an epoch."""
    real = trainer.save_state

    class Crash(Exception):
        pass

    def save(path, state):
        real(path, state)
        if "partial_epoch" in state:
            raise Crash

    monkeypatch.setattr(trainer, "save_state", save)
    return Crash, monkeypatch.undo


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo", "ppo"])
def test_every_stage_resumes_exactly_from_a_checkpoint_mid_epoch(runs, tmp_path, stage, crash_after_a_checkpoint_mid_epoch):
    root, files = runs
    if stage == "ppo":
        cfg = ppo_config(root, files, kl_target=1.0, kl_horizon=20, checkpoint_every=5)
    else:
        data = files["sft"] if stage == "sft" else files["pref"]
        cfg = config(task=stage, data=data, init_from=str(root / ("lm" if stage == "sft" else "sft")), checkpoint_every=3,
                     dropout=0.1)
    crash, restore = crash_after_a_checkpoint_mid_epoch
    with pytest.raises(crash):
        train(cfg, tmp_path / "cut", progress=False)
    restore()
    full = train(cfg, tmp_path / "full", progress=False)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["test"] == full["test"]
    weights = [load_run(tmp_path / d, "cpu").model.state_dict() for d in ("full", "cut")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    if stage == "ppo":
        assert (tmp_path / "cut" / "rollouts.jsonl").read_text() == (tmp_path / "full" / "rollouts.jsonl").read_text()


def test_sft_and_lm_start_from_a_gpt2_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "gpt2"
    texts = ["the cat sat on the mat", "a dog ran in the park", "今天天气很好"] * 4
    tok = build_tokenizer("bytebpe", special_tokens=["<|endoftext|>"]).train(texts, vocab_size=300)
    tok.save(folder)
    eos = tok.vocab["<|endoftext|>"]
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=tok.vocab_size,
                                                              n_positions=32, bos_token_id=eos, eos_token_id=eos))
    hf.save_pretrained(folder)
    start = load_starting_lm(str(folder), WINDOW, 0.0)
    ids = torch.tensor([tok.encode("the cat sat")])
    assert_close(start.model.eval()(ids)[0], hf.eval()(ids).logits, atol=1e-5, rtol=1e-5)
    sft = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "q: ", "response": t} for t in texts])
    train(config(task="sft", data=sft, init_from=str(folder), epochs=1), tmp_path / "sft", progress=False)
    assert load_run(tmp_path / "sft", "cpu").tokenizer.vocab == tok.vocab
    (tmp_path / "docs.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    lm = train(config(task="lm", data=str(tmp_path / "docs.txt"), init_from=str(tmp_path / "sft"), epochs=1),
               tmp_path / "lm", progress=False)
    assert lm["test"]["ppl"] > 1


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    root, files = runs
    good = {"prompt": GOOD, "chosen": POS[0], "rejected": NEG[0]}
    missing = write_jsonl(tmp_path / "missing.jsonl", [good, {"prompt": GOOD, "chosen": POS[1]}])
    empty = write_jsonl(tmp_path / "empty.jsonl", [good, good, {**good, "chosen": " "}])
    other = tmp_path / "other-reward"
    shutil.copytree(root / "reward", other)
    shutil.rmtree(other / "tokenizer")
    build_tokenizer("char").train(["完全不同的字"], min_freq=1).save(other / "tokenizer")
    base = ["train", "--init-from", str(root / "sft"), "--device", "cpu", "--no-progress", "--window-size", str(WINDOW)]
    cases = [
        (["--task", "reward", "--data", missing], f'{missing}:2: missing field "rejected"'),
        (["--task", "dpo", "--data", empty], f'{empty}:3: empty "chosen"'),
        (["--task", "ppo", "--data", files["prompts"]], "--task ppo needs a reward model: give --reward-model"),
        (["--task", "ppo", "--data", files["prompts"], "--reward-model", str(root / "sft")], "a sft run, not a reward run"),
        (["--task", "ppo", "--data", files["prompts"], "--reward-model", str(other)], "have different tokenizers"),
        (["--task", "sft", "--data", files["sft"], "--window-size", "4096"], "exceeds the 24 positions"),
        (["--task", "sft", "--data", files["sft"], "--init-from", str(root / "reward")], "a reward run of model gpt"),
        (["--task", "dpo", "--data", files["pref"], "--beta", "0"], "--beta must be > 0"),
        (["--task", "dpo", "--data", files["pref"], "--strategy", "ddp"], "--task dpo trains in one process"),
    ]
    for number, (args, message) in enumerate(cases):
        assert main([*base, *args, "--out", str(tmp_path / f"r{number}")]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert main(["train", "--task", "sft", "--data", files["sft"], "--out", str(tmp_path / "s")]) == 2
    assert "--task sft starts from a causal LM: give --init-from" in capsys.readouterr().err

    same = write_jsonl(tmp_path / "same.jsonl", [good] * 9 + [{**good, "rejected": POS[0]}] * 2)
    assert main([*base, "--task", "reward", "--data", same, "--out", str(tmp_path / "rm"), "--epochs", "1"]) == 0
    assert "warning: 2 preference pair(s) of " in capsys.readouterr().err
