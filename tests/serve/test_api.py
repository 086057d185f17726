"""The server against the official `openai` client on loopback: a greedy chat completion equals `nlplab generate`,
streamed deltas join into the non-streamed text, seeded sampling repeats `nlplab generate --seed`, /v1/predict
equals `nlplab predict`, /v1/embeddings equals `nlplab embed`; concurrent requests of different lengths arriving at
different times share forward passes and get what they get alone."""

import asyncio
import json
import time

import httpx
import numpy as np
import openai
import pytest

from nlplab.cli import main
from nlplab.runs import load_run
from nlplab.serve.app import create_app
from nlplab.serve.server import running


def cli_json(capsys, *args):
    assert main([*map(str, args), "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lm_server(lm):
    with running(create_app(lm, "tiny-gpt", max_batch=16, max_new_tokens=40, log=lambda line: None)) as url:
        yield url


@pytest.fixture(scope="module")
def client(lm_server):
    return openai.OpenAI(base_url=lm_server + "/v1", api_key="unused", max_retries=0)


def test_models_and_health(client, lm_server):
    assert [m.id for m in client.models.list().data] == ["tiny-gpt"]
    health = httpx.get(lm_server + "/health").json()
    assert health["task"] == "lm" and "generate" in health["abilities"] and health["engine"]["batched_generation"]


def test_greedy_chat_equals_nlplab_generate_and_streaming_joins_to_it(client, lm, lm_run, capsys):
    messages = [{"role": "user", "content": "今天天气"}]
    answer = client.chat.completions.create(model="tiny-gpt", messages=messages, temperature=0, max_tokens=12)
    prompt = lm.lm.render_chat(messages)
    expected = cli_json(capsys, "generate", lm_run, "--prompt", prompt, "--max-new-tokens", 12, "--json")
    assert answer.choices[0].message.content == expected["texts"][0]
    assert answer.usage.prompt_tokens == len(lm.lm.encode(prompt))
    assert answer.usage.completion_tokens == len(expected["ids"][0])
    assert answer.choices[0].finish_reason == ("length" if len(expected["ids"][0]) == 12 else "stop")
    chunks = list(client.chat.completions.create(model="tiny-gpt", messages=messages, temperature=0, max_tokens=12,
                                                 stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == answer.choices[0].message.content
    assert len([d for d in deltas if d]) > 1                       # the answer came in pieces
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_stop_strings_streamed_and_not_agree(client, lm):
    full = client.completions.create(model="tiny-gpt", prompt="我们", temperature=0, max_tokens=30).choices[0].text
    stop = full[4:6]
    cut = client.completions.create(model="tiny-gpt", prompt="我们", temperature=0, max_tokens=30, stop=[stop])
    assert cut.choices[0].text == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="tiny-gpt", prompt="我们", temperature=0, max_tokens=30, stop=[stop],
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text


def test_seeded_sampling_repeats_nlplab_generate(client, lm_run, capsys):
    answer = client.completions.create(model="tiny-gpt", prompt="这家", temperature=0.8, top_p=0.9, seed=5, n=2,
                                       max_tokens=15)
    for k, choice in enumerate(answer.choices):
        expected = cli_json(capsys, "generate", lm_run, "--prompt", "这家", "--strategy", "sample", "--temperature", 0.8,
                            "--top-p", 0.9, "--seed", 5 + k, "--max-new-tokens", 15, "--json")
        assert choice.text == expected["texts"][0]
    again = client.completions.create(model="tiny-gpt", prompt="这家", temperature=0.8, top_p=0.9, seed=5, n=2,
                                      max_tokens=15)
    assert [c.text for c in again.choices] == [c.text for c in answer.choices]


def test_concurrent_requests_share_steps_and_equal_one_at_a_time(lm):
    """Requests of different lengths, sent at staggered times, to a batching server and a one-at-a-time server."""
    prompts = ["今天", "这家酒店服务不错。我们", "去", "公园散步今天天气很好", "我们去", "服务", "天气很好。", "酒店"]
    bodies = [{"prompt": p, "max_tokens": 5 + 4 * i, "temperature": 0.7 if i % 3 == 0 else 0, "seed": i}
              for i, p in enumerate(prompts)]

    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            async def one(i, body):
                await asyncio.sleep(0.004 * i)
                return (await http.post("/v1/completions", json=body)).json()
            answers = await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
            return answers, (await http.get("/health")).json()["engine"]

    results = {}
    slow = lm.model.register_forward_hook(lambda *_: time.sleep(0.01))    # overlap however fast the machine is
    try:
        for max_batch in (16, 1):
            with running(create_app(lm, "tiny-gpt", max_batch=max_batch, max_new_tokens=40,
                                    log=lambda line: None)) as url:
                results[max_batch] = asyncio.run(send_all(url))
    finally:
        slow.remove()
    (batched, stats), (alone, alone_stats) = results[16], results[1]
    assert [a["choices"][0]["token_ids"] for a in batched] == [a["choices"][0]["token_ids"] for a in alone]
    assert [a["choices"][0]["text"] for a in batched] == [a["choices"][0]["text"] for a in alone]
    assert stats["peak"] > 1 and alone_stats["peak"] == 1
    assert stats["steps"] < alone_stats["steps"]


def test_predict_equals_nlplab_predict(classifier, classify_run, capsys):
    texts = ["这本书很好看，推荐", "服务很差，不推荐", "房间干净"]
    expected = cli_json(capsys, "predict", classify_run, *texts, "--json")
    with running(create_app(classifier, "tiny-bow", log=lambda line: None)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        got = client.post("/predict", body={"inputs": texts}, cast_to=httpx.Response).json()
    assert [r["label"] for r in got["data"]] == [r["label"] for r in expected]
    for mine, theirs in zip(got["data"], expected):
        assert mine["text"] == theirs["text"] and mine["truncated"] == theirs["truncated"]
        np.testing.assert_allclose(list(mine["probabilities"].values()), list(theirs["probabilities"].values()), atol=1e-6)


def test_concurrent_predictions_form_micro_batches_with_the_same_records(classifier):
    texts = [f"{a}{b}" for a in ["这本书很好看", "服务很差", "房间干净", "物流太慢"] for b in ["，推荐", "，失望", ""]]
    alone = classifier.predict(texts)

    async def send_all(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            answers = await asyncio.gather(*(http.post("/v1/predict", json={"inputs": [t]}) for t in texts))
            return [a.json()["data"][0] for a in answers], (await http.get("/health")).json()["engine"]

    with running(create_app(classifier, "tiny-bow", max_batch=16, log=lambda line: None)) as url:
        records, stats = asyncio.run(send_all(url))
    assert stats["micro_batches"]["requests"] == len(texts) and stats["micro_batches"]["batches"] < len(texts)
    for mine, theirs in zip(records, alone):
        assert mine["label"] == theirs["label"]
        np.testing.assert_allclose(list(mine["probabilities"].values()), list(theirs["probabilities"].values()), atol=1e-5)


def test_embeddings_equal_nlplab_embed(tmp_path):
    texts = ["这家酒店服务很好", "The movie was great.", "a third, longer sentence about nothing in particular"]
    (tmp_path / "s.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["embed", "all-MiniLM-L6-v2", "--input", str(tmp_path / "s.txt"), "--out", str(tmp_path / "e.npy"),
                 "--device", "cpu"]) == 0
    expected = np.load(tmp_path / "e.npy")
    with running(create_app(load_run("all-MiniLM-L6-v2", "cpu"), "all-MiniLM-L6-v2", log=lambda line: None)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        packed = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)       # base64 on the wire
        plain = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in packed.data]), expected, atol=1e-6)
    np.testing.assert_allclose(np.array([d.embedding for d in plain.data]), expected, atol=1e-6)
    assert plain.usage.prompt_tokens > len(texts)
