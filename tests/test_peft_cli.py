"""`nlplab train --peft`, eval, predict and `nlplab peft merge` from all-MiniLM-L6-v2, and the bad input the adapter
options can bring (one line, exit 2)."""

import pytest
import torch
import transformers
from safetensors.torch import load_file

from nlplab.cli import main

FAST = ["--epochs", "1", "--batch-size", "32", "--window-size", "16", "--device", "cpu", "--no-progress"]


def test_lora_from_minilm_trains_predicts_and_merges_into_a_bert_model(tiny_tsv, tmp_path, capsys):
    run, merged = tmp_path / "run", tmp_path / "merged"
    assert main(["train", "--data", str(tiny_tsv), "--model", "transformer", "--init-from", "all-MiniLM-L6-v2",
                 "--peft", "lora", "--lora-r", "8", "--lora-targets", "q,v", "--lr", "1e-3", "--out", str(run), *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    lora = 2 * 384 * 8 * 2 * 6  # 2·d·r for each adapted d×d matrix: q and v of 6 layers
    head = 384 * 2 + 2
    assert lines[0] == f"trainable {lora + head:,} of {22_713_216 + lora + head:,} (0.33%)"
    assert (run / "adapter" / "adapter_model.safetensors").stat().st_size < 1_000_000
    assert main(["predict", str(run), "质量太差了", "非常喜欢"]) == 0
    predicted = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert main(["peft", "merge", str(run), "--out", str(merged)]) == 0
    assert "head.safetensors" in capsys.readouterr().out
    bert = transformers.AutoModel.from_pretrained(merged).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(merged)
    head = load_file(merged / "head.safetensors")
    for label, probability, text in predicted:
        batch = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            pooled = bert(**batch).last_hidden_state.mean(1)
        probs = torch.softmax(pooled @ head["head.weight"].T + head["head.bias"], -1)[0]
        assert probs.max().item() == pytest.approx(float(probability), abs=1e-4)
        assert ("0", "1")[probs.argmax().item()] == label


@pytest.mark.parametrize(
    "args, message",
    [
        (["--peft", "lora", "--lora-r", "0"], "--lora-r (the rank of the LoRA update) must be >= 1, got 0"),
        (["--peft", "lora", "--lora-targets", "query"], "LoRA target 'query' names no Linear layer of this model; "
                                                        "its Linear layers are: encoder.blocks.*.attn.q, "),
        (["--peft", "prefix", "--model", "lstm"], "--peft prefix adapts the layers of a transformer and model lstm has none"),
        (["--peft", "qlora", "--lora-targets", "embed_norm"], "QLoRA target 'embed_norm' names no Linear layer"),
        (["--peft", "lora", "--strategy", "ddp"], "--peft lora trains in one process: its frozen base is not spread"),
        (["--peft", "bitfit", "--gradual-unfreeze"], "--peft trains only the adapter and the head: drop --gradual-unfreeze"),
        (["--peft", "ia3"], "unknown peft 'ia3'; choose --peft from: lora, qlora, bitfit, adapter, prompt, prefix"),
        (["--init-from", "all-MiniLM-L6-v2", "--model", "bow"], "a pretrained encoder folder needs model: transformer"),
    ],
)
def test_bad_adapter_options_exit_2_with_one_line(tiny_tsv, tmp_path, capsys, args, message):
    model = [] if "--model" in args else ["--model", "transformer"]
    code = main(["train", "--data", str(tiny_tsv), *model, *args, "--out", str(tmp_path / "r"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_merging_a_prompt_run_says_it_cannot(tiny_tsv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_tsv), "--model", "transformer", "--hidden-size", "16", "--peft", "prompt",
                 "--num-virtual-tokens", "2", "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    assert main(["peft", "merge", str(run), "--out", str(tmp_path / "merged")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prompt adds modules that cannot be folded into the weights" in err
    assert not (tmp_path / "merged").exists()
