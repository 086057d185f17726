"""--init-from and --peft in training: every method trains over a frozen base for every task with a transformer,
the run keeps only its adapter (and the head) and comes back through load_run; resume is exact; a classify run's
encoder starts another run; a GPT-2 folder starts a language model; `merge_run` writes folders transformers loads."""

import json

import pytest
import torch
import transformers
from safetensors.torch import load_file

from nlplab.data.readers import read_labelled_tsv
from nlplab.errors import ConfigError, RunError
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.peft import METHODS, PeftModel
from nlplab.runs import load_run
from nlplab.runs.merge import merge_run
from nlplab.text import build_tokenizer, load_tokenizer
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import train
from nlplab.train.weights import BASE, pretrained_model

RUN_FILES = {"config.yaml", "model.json", "labels.json", "tokenizer", "adapter", "metrics.json", "history.jsonl",
             "curves.png", "checkpoint.safetensors"}


@pytest.fixture
def bert_folder(tiny_tsv, tmp_path):
    """A small random BERT folder (2 layers of width 16) with a WordPiece tokenizer of the tiny texts."""
    texts = [text for text, _ in read_labelled_tsv(tiny_tsv)]
    tokenizer = build_tokenizer("wordpiece").train(texts, vocab_size=200, min_freq=1)
    torch.manual_seed(0)
    encoder = BertEncoder(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=2, num_heads=2,
                                     intermediate_size=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_id))
    folder = tmp_path / "bert"
    encoder.save_pretrained(folder)
    tokenizer.save(folder)
    return folder


def config(data, **fields):
    values = {"data": str(data), "model": "transformer", "epochs": 2, "batch_size": 16, "lr": 1e-2, "window_size": 32,
              "device": "cpu", "num_virtual_tokens": 4, "adapter_size": 8, "lora_r": 4}
    return TrainConfig.from_dict({**values, **fields})


@pytest.mark.parametrize("method", METHODS)
def test_each_method_keeps_only_its_adapter_and_comes_back(tiny_tsv, bert_folder, tmp_path, method):
    run = tmp_path / "run"
    started = []
    metrics = train(config(tiny_tsv, init_from=str(bert_folder), peft=method), run, progress=False, on_start=started.append)
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert {p.name for p in (run / "adapter").iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                                             "modules_to_save.safetensors"}
    assert set(load_file(run / "adapter" / "modules_to_save.safetensors")) == {"head.weight", "head.bias"}
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(bert_folder)
    loaded = load_run(run, "cpu")
    assert isinstance(loaded.model, PeftModel) and not loaded.model.training
    trainable, total = loaded.model.trainable_parameters()
    assert metrics["parameters"] == {"trainable": trainable, "total": total} == {k: started[0][k] for k in ("trainable", "total")}
    assert trainable < total / 4
    evaluated = loaded.evaluate()
    assert evaluated["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-6)
    assert evaluated["accuracy"] == metrics["test"]["accuracy"]


@pytest.mark.parametrize("fields", [{"peft": "lora", "init_from": "{bert}"}, {"peft": "prefix", "prefix_projection": 8},
                                    {"peft": "qlora", "init_from": "{bert}", "lora_targets": "qkv,ffn.fc1"}])
def test_resume_of_a_peft_run_reaches_the_same_metrics(tiny_tsv, bert_folder, tmp_path, fields):
    cfg = config(tiny_tsv, epochs=3, **{k: v.format(bert=bert_folder) if isinstance(v, str) else v for k, v in fields.items()})
    full = train(cfg, tmp_path / "full", progress=False)

    def stop(epoch, _row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", on_epoch_end=stop, progress=False)
    state = load_file(tmp_path / "cut" / "checkpoint.safetensors")
    assert not any("tokens.weight" in name for name in state)  # the frozen base stays out of the checkpoint
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed["test"]["loss"] == pytest.approx(full["test"]["loss"], abs=1e-9)
    assert (tmp_path / "cut" / BASE).is_file() == ("init_from" not in fields)


def test_tagger_from_scratch_keeps_its_random_base(tmp_path):
    sentences = ["张伟在北京工作。", "王芳去上海了。", "李娜在广州开会。", "刘洋去深圳了。"] * 6
    tags = {"张伟": "PER", "王芳": "PER", "李娜": "PER", "刘洋": "PER", "北京": "LOC", "上海": "LOC", "广州": "LOC", "深圳": "LOC"}
    lines = []
    for sentence in sentences:
        labels = ["O"] * len(sentence)
        for word, kind in tags.items():
            at = sentence.find(word)
            if at >= 0:
                labels[at:at + 2] = [f"B-{kind}", f"I-{kind}"]
        lines += [f"{c}\t{t}" for c, t in zip(sentence, labels)] + [""]
    data = tmp_path / "ner.txt"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = TrainConfig.from_dict({"task": "tag", "data": str(data), "model": "transformer", "crf": True, "epochs": 2,
                                 "hidden_size": 16, "heads": 2, "layers": 1, "window_size": 16, "min_freq": 1,
                                 "device": "cpu", "peft": "lora", "lora_targets": "q,v,ffn.fc1"})
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / BASE).is_file() and not (tmp_path / "run" / "model.safetensors").exists()
    saved = load_file(tmp_path / "run" / "adapter" / "modules_to_save.safetensors")
    assert {name.split(".")[0] for name in saved} == {"head", "crf"}
    assert load_run(tmp_path / "run", "cpu").evaluate()["f1"] == metrics["test"]["f1"]


def test_a_classify_run_starts_a_matcher(tiny_tsv, bert_folder, tmp_path):
    classify = tmp_path / "classify"
    train(config(tiny_tsv, init_from=str(bert_folder), peft="lora", epochs=1), classify, progress=False)
    merged = load_run(classify, "cpu").model.merge_and_unload().encoder
    encoder = pretrained_model(str(classify), BertEncoder)
    assert all(torch.equal(t, merged.state_dict()[k]) for k, t in encoder.state_dict().items())
    with pytest.raises(ConfigError, match="GPT"):
        pretrained_model(str(classify), GPT)
    pairs = tmp_path / "pairs.tsv"
    texts = [text for text, _ in read_labelled_tsv(tiny_tsv)]
    pairs.write_text("".join(f"{a}\t{b}\t{int(i % 3 == 0)}\n" for i, (a, b) in enumerate(zip(texts, texts[1:]))),
                     encoding="utf-8")
    cfg = TrainConfig.from_dict({"task": "match", "data": str(pairs), "model": "simcse", "loss": "contrastive",
                                 "init_from": str(classify), "epochs": 1, "batch_size": 16, "window_size": 32,
                                 "device": "cpu", "peft": "bitfit"})
    metrics = train(cfg, tmp_path / "match", progress=False)
    saved = load_file(tmp_path / "match" / "adapter" / "modules_to_save.safetensors")
    assert {name.rsplit(".", 1)[0] for name in saved} == {"encoder.head"}  # the bi-encoder's projection
    assert load_run(tmp_path / "match", "cpu").evaluate()["spearman"] == pytest.approx(metrics["test"]["spearman"], abs=1e-9)
    assert load_tokenizer(tmp_path / "match" / "tokenizer").vocab == load_tokenizer(bert_folder).vocab
    bert_folder.rename(tmp_path / "moved")
    with pytest.raises(RunError, match=r"classify: its base '.*bert' \(init_from in config.yaml"):
        load_run(classify, "cpu")


def test_a_gpt2_folder_starts_a_language_model_and_merges_back(tmp_path):
    lines = ["the cat sat on the mat.", "a dog ran in the park.", "the bird sang a song.", "we walk home at night."] * 10
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = build_tokenizer("bytebpe", special_tokens=("<|endoftext|>",)).train(lines, vocab_size=300)
    torch.manual_seed(0)
    folder = tmp_path / "gpt2"
    GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16)).save_pretrained(folder)
    tokenizer.save(folder)
    cfg = TrainConfig.from_dict({"task": "lm", "data": str(corpus), "model": "gpt", "init_from": str(folder),
                                 "window_size": 16, "epochs": 2, "batch_size": 8, "lr": 1e-2, "device": "cpu",
                                 "peft": "lora", "lora_targets": "qkv,attn.out"})
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["parameters"]["trainable"] == 2 * 8 * ((16 + 48) + (16 + 16))  # 2 layers, r (in + out) per site
    run = load_run(tmp_path / "run", "cpu")
    assert run.evaluate()["ppl"] == pytest.approx(metrics["test"]["ppl"], rel=1e-6)
    merged = merge_run(tmp_path / "run", tmp_path / "merged")
    assert (merged.architecture, merged.method, merged.heads) == ("GPT2LMHeadModel", "lora", ())
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "merged").eval()
    ids = torch.tensor([tokenizer.encode("the cat ran in the park.")])
    with torch.no_grad():
        assert (run.model(ids)[0] - theirs(ids).logits).abs().max() <= 1e-5
    with pytest.raises(ConfigError, match="already holds"):
        merge_run(tmp_path / "run", tmp_path / "merged")
