"""`nlplab generate` on a Hugging Face GPT-2 folder (nlplab's GPT + tokenizer.json) returns exactly the ids of
transformers' generate() for greedy and beam search; sampling, stop strings and bad input; the Chat API on a tiny
Qwen2 chat model (transformers) and on an nlplab GPT run."""

import json

import pytest
import torch
import transformers

from nlplab.cli import main
from nlplab.generate.causal import generate, jinja_chat, load_causal_lm, nlplab_chat
from nlplab.generate.chat import Chat
from nlplab.models.lm import response_logprobs
from nlplab.runs import load_run
from nlplab.text import build_tokenizer

TEXT = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song", "今天天气很好", "我们去公园散步"] * 4
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def randomise(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.3)
    return model


def tokenizer(folder, specials):
    tok = build_tokenizer("bytebpe", special_tokens=specials).train(TEXT, vocab_size=300)
    tok.save(folder)
    return tok


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    tok = tokenizer(folder, ["<|endoftext|>"])
    torch.manual_seed(0)
    eos = tok.vocab["<|endoftext|>"]
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=tok.vocab_size, n_positions=48,
                                     bos_token_id=eos, eos_token_id=eos)
    randomise(transformers.GPT2LMHeadModel(config)).save_pretrained(folder)
    return folder, tok


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen2")
    tok = tokenizer(folder, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    (folder / "tokenizer_config.json").write_text(json.dumps({**json.loads((folder / "tokenizer_config.json").read_text()),
                                                              "chat_template": CHATML, "eos_token": "<|im_end|>"}))
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                      eos_token_id=tok.vocab["<|im_end|>"], tie_word_embeddings=False)
    randomise(transformers.Qwen2ForCausalLM(config)).save_pretrained(folder)
    return folder, tok


def hf_ids(folder, prompt, **kwargs):
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = torch.tensor([prompt])
    eos = model.config.eos_token_id
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, eos_token_id=eos, pad_token_id=eos,
                         top_k=None, top_p=None, temperature=None, **kwargs)
    return [[t for t in row[len(prompt):].tolist() if t != eos] for row in out]


def cli_json(capsys, *args):
    assert main(["generate", *map(str, args), "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_greedy_and_beam_equal_transformers_generate(gpt2, capsys):
    folder, tok = gpt2
    prompt = tok.encode("the cat")
    ids = ",".join(map(str, prompt))
    out = cli_json(capsys, folder, "--prompt-ids", ids, "--strategy", "greedy", "--max-new-tokens", 12)
    assert out["ids"] == hf_ids(folder, prompt, max_new_tokens=12)
    assert out["texts"] == [tok.decode(out["ids"][0])]
    out = cli_json(capsys, folder, "--prompt-ids", ids, "--strategy", "beam", "--beams", 4, "--length-penalty", 2.0,
                   "--num-return", 2, "--max-new-tokens", 10)
    assert out["ids"] == hf_ids(folder, prompt, max_new_tokens=10, num_beams=4, length_penalty=2.0, num_return_sequences=2)
    assert out["scores"][0] >= out["scores"][1]


def test_sampling_repeats_with_a_seed_and_tends_to_greedy(gpt2):
    lm = load_causal_lm(gpt2[0], "cpu")
    prompt = gpt2[1].encode("a dog")
    draw = lambda seed, t: generate(lm, prompt, "sample", 10, temperature=t, top_p=0.9, seed=seed, num_return=3)
    assert [g.ids for g in draw(1, 1.0)] == [g.ids for g in draw(1, 1.0)] != [g.ids for g in draw(2, 1.0)]
    greedy = generate(lm, prompt, "greedy", 10)[0]
    assert all(g.ids == greedy.ids for g in draw(3, 1e-4))
    assert greedy.score == pytest.approx(draw(3, 1e-4)[0].score)


def test_scores_are_the_decoding_log_probabilities_without_another_forward_pass(gpt2):
    folder, tok = gpt2
    lm = load_causal_lm(folder, "cpu")
    model = lm.step.double()
    fed = []
    lm.step = lambda ids, cache: (fed.append(ids.shape[1]), model(ids, cache))[1]
    prompt = tok.encode("the cat")
    for strategy, options in (("greedy", {}), ("sample", {"seed": 0, "temperature": 0.7, "num_return": 3})):
        fed.clear()
        out = generate(lm, prompt, strategy, 12, **options)
        assert fed[0] == len(prompt) and set(fed[1:]) <= {1} and len(fed) <= 12  # the prompt once, then one token a step
        for g in out:
            ids = torch.tensor([prompt + g.ids])
            logp, _ = response_logprobs(model, ids, torch.arange(ids.shape[1])[None] >= len(prompt))
            assert g.score == pytest.approx(logp.sum().item(), abs=1e-9)


def test_generation_stops_at_a_stop_string(gpt2):
    lm = load_causal_lm(gpt2[0], "cpu")
    prompt = gpt2[1].encode("the")
    full = generate(lm, prompt, "greedy", 20)[0]
    stop = full.text[3:5]
    cut = generate(lm, prompt, "greedy", 20, stop=[stop])[0]
    assert cut.text == full.text[: full.text.index(stop)] and len(cut.ids) < len(full.ids)


@pytest.mark.parametrize("args, message", [
    (["--prompt", "the cat " * 40], "shorten the prompt"),
    (["--prompt", "the", "--beams", "0"], "--beams must be >= 1"),
    (["--prompt", "the", "--strategy", "sample", "--top-p", "1.5"], "--top-p must be in"),
    (["--prompt", "the", "--strategy", "nucleus"], "unknown strategy"),
])
def test_bad_generation_input_exits_2(gpt2, capsys, args, message):
    assert main(["generate", str(gpt2[0]), *args, "--json"]) == 2
    assert message in capsys.readouterr().err


def test_unknown_model_folder_exits_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "neither an nlplab run" in capsys.readouterr().err


def test_jinja_chat_template_renders_as_transformers(qwen):
    folder, _ = qwen
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), chat_template=CHATML)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "hi"}, {"role": "user", "content": "how are you"}]
    assert jinja_chat(CHATML, {})(messages) == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_chat_history_truncation_and_new_tokens_only(qwen):
    folder, tok = qwen
    chat = Chat(load_causal_lm(folder, "cpu"), max_length=120, max_new_tokens=8, temperature=0)
    replies = [chat.send(q) for q in ("the cat", "a dog ran", "the bird sang")]
    assert chat.history == list(zip(("the cat", "a dog ran", "the bird sang"), replies))
    # the response is the decoded continuation alone: the same as greedy decoding from the templated prompt
    lm = chat.lm
    prompt = tok.encode(lm.render_chat(chat.messages("the bird sang", chat.history[:2])))
    assert len(prompt) < 120
    assert replies[2] == generate(lm, prompt, "greedy", 8)[0].text
    # a prompt over max_length drops the oldest turns first
    short = Chat(lm, max_length=len(tok.encode(lm.render_chat(chat.messages("ok", chat.history[1:])))) + 1, max_new_tokens=4,
                 temperature=0)
    short.history = list(chat.history)
    text = tok.decode(short.prompt_ids("ok"))
    assert "the cat" not in text and "a dog ran" in text and "the bird sang" in text


def test_nlplab_template_and_chat_on_an_nlplab_gpt(tmp_path):
    assert nlplab_chat([{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"},
                        {"role": "user", "content": "再见"}]) == "问：你好\n答：好\n问：再见\n答："
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(["问：你好答：你好呀"] * 30 + ["问：再见答：再见了"] * 30) + "\n", encoding="utf-8")
    assert main(["train", "--task", "lm", "--data", str(docs), "--model", "gpt", "--window-size", "64", "--hidden-size", "16",
                 "--heads", "2", "--epochs", "1", "--min-freq", "1", "--device", "cpu", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    chat = Chat(load_run(tmp_path / "run", "cpu").lm, max_length=64, max_new_tokens=5, temperature=0.7, seed=0)
    assert isinstance(chat.send("你好"), str) and len(chat.history) == 1
    chat.send("再见")
    assert [q for q, _ in chat.history] == ["你好", "再见"]


def test_prompt_ids_need_no_tokenizer(gpt2, tmp_path, capsys):
    folder, tok = gpt2
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (folder / name).exists():
            (bare / name).write_bytes((folder / name).read_bytes())
    prompt = tok.encode("the cat")
    out = cli_json(capsys, bare, "--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", 6)
    assert out["ids"] == hf_ids(folder, prompt, max_new_tokens=6) and out["texts"] == [None]
    assert main(["generate", str(bare), "--prompt", "the cat", "--device", "cpu"]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err


def test_pickled_weights_are_refused(qwen, tmp_path, capsys):
    folder, _ = qwen
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for path in folder.iterdir():
        if path.name != "model.safetensors":
            (pickled / path.name).write_bytes(path.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    assert main(["generate", str(pickled), "--prompt", "hi", "--device", "cpu"]) == 2
    assert "never loads pickled weights" in capsys.readouterr().err
