"""The server's limits: 413 over the body limit, 401 without the bearer key, 400 naming the field for a bad value,
an unknown field, malformed JSON, max_tokens above the cap or an over-long prompt, 404 for another model, 504 after
the timeout; a few hundred generated malformed bodies never get a 500 nor stop the server; a client that leaves
mid-stream frees its batch slot while the others go on; `nlplab serve` starts, answers and stops on Ctrl-C."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlplab.generate.causal import CausalLM, nlplab_chat
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.runs.base import Generating, Predictor
from nlplab.serve.app import create_app
from nlplab.serve.server import running

QUIET = {"log": lambda line: None}


@pytest.fixture(scope="module")
def lm_server(lm):
    with running(create_app(lm, "tiny-gpt", max_new_tokens=8, **QUIET)) as url:
        yield url


@pytest.fixture(scope="module")
def http(lm_server):
    with httpx.Client(base_url=lm_server, timeout=30) as client:
        yield client


def error(response, status, param=None):
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["param"] == param and body["message"]
    return body["message"]


def test_bad_requests_are_4xx_naming_the_field(http):
    post = http.post
    chat = {"messages": [{"role": "user", "content": "你好"}]}
    assert "above this server's cap of 8" in error(post("/v1/chat/completions", json={**chat, "max_tokens": 9}), 400,
                                                   "max_tokens")
    error(post("/v1/chat/completions", json={**chat, "temperature": "hot"}), 400, "temperature")
    error(post("/v1/chat/completions", json={**chat, "temprature": 0.5}), 400, "temprature")
    error(post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "hi"}]}), 400, "messages.0.role")
    error(post("/v1/chat/completions", json={**chat, "n": 0}), 400, "n")
    error(post("/v1/completions", json={"prompt": "你好", "max_tokens": 2.5}), 400, "max_tokens")
    assert "shorten the prompt" in error(post("/v1/completions", json={"prompt": "今天" * 40}), 400, "prompt")
    assert "outside the vocabulary" in error(post("/v1/completions", json={"prompt": [1, 2, 10**6]}), 400, "prompt")
    assert "not valid JSON" in error(post("/v1/completions", content=b'{"prompt": "a",',
                                          headers={"content-type": "application/json"}), 400)
    error(post("/v1/completions", json={"prompt": "你好", "model": "gpt-4"}), 404, "model")
    assert "cannot predict" in error(post("/v1/predict", json={"inputs": ["x"]}), 400)
    error(post("/v1/completions", content=b"x" * (2 << 20)), 413)
    error(http.get("/v1/nothing"), 404)
    assert http.get("/health").json()["status"] == "ok"


def test_a_smaller_body_limit_and_the_api_key(lm):
    with running(create_app(lm, "tiny-gpt", max_body=200, api_key="s3cret", **QUIET)) as url:
        body = {"prompt": "你好", "max_tokens": 2}
        error(httpx.post(url + "/v1/completions", json=body), 401)
        error(httpx.post(url + "/v1/completions", json=body, headers={"Authorization": "Bearer wrong"}), 401)
        ok = httpx.post(url + "/v1/completions", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] <= 2
        big = {"prompt": "你" * 100}
        error(httpx.post(url + "/v1/completions", json=big, headers={"Authorization": "Bearer s3cret"}), 413)
        assert httpx.get(url + "/health").status_code == 200          # open: no key needed
        assert "playground" in httpx.get(url + "/").text


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) |
                    st.text(max_size=30), lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
FIELDS = ["model", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "stream",
          "input", "inputs", "encoding_format", "role", "content", "repetition_penalty", "stream_options"]
BODIES = st.one_of(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON, max_size=6).map(json.dumps),
                   JSON.map(json.dumps), st.text(max_size=60), st.binary(max_size=60))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/predict"]), body=BODIES)
def test_generated_malformed_bodies_never_get_a_500(http, path, body):
    response = http.post(path, content=body if isinstance(body, bytes) else body.encode(),
                         headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["message"]


class Slow(Predictor):
    """A classifier stand-in that takes half a second per batch."""

    task, abilities = "classify", ("predict",)

    def predict(self, inputs):
        time.sleep(0.5)
        return [{"text": t, "label": "x"} for t in inputs]


def test_a_request_over_the_timeout_gets_504_and_the_server_goes_on():
    with running(create_app(Slow("slow", torch.device("cpu")), "slow", timeout=0.1, **QUIET)) as url:
        error(httpx.post(url + "/v1/predict", json={"inputs": ["a"]}), 504)
        time.sleep(0.5)
        assert httpx.post(url + "/v1/predict", json={"inputs": ["b"]}).status_code == 504
        assert httpx.get(url + "/health").json()["status"] == "ok"


class RandomGPT(Generating):
    """A random GPT without EOS and a long context: every request decodes its whole budget."""

    task = "lm"

    def __init__(self):
        super().__init__("random-gpt", torch.device("cpu"))
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=50, block_size=1024, n_layer=2, n_head=2, n_embd=32)).eval()
        alphabet = [chr(0x4E00 + i) for i in range(50)]
        self.lm = CausalLM(model, lambda text: [alphabet.index(c) for c in text],
                           lambda ids: "".join(alphabet[i] for i in ids), None, 1024, nlplab_chat, "random-gpt",
                           vocab_size=50)


def test_a_client_that_leaves_mid_stream_frees_its_slot():
    app = create_app(RandomGPT(), "random-gpt", max_new_tokens=1000, **QUIET)
    engine = app.app.state.engine
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        body = {"prompt": "一丁", "max_tokens": 1000, "temperature": 0, "stream": True}
        with http.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            assert engine.batch.running or engine.batch.waiting
        other = http.post("/v1/completions", json={"prompt": "丁", "max_tokens": 5, "temperature": 0}).json()
        assert other["usage"]["completion_tokens"] == 5
        deadline = time.monotonic() + 20
        while engine.batch.busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        status = http.get("/health").json()["engine"]
    assert status["cancelled"] == 1 and status["running"] == 0
    assert status["steps"] < 1000                 # the left stream did not decode its whole budget


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nlplab_serve_starts_answers_and_stops(classify_run):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "nlplab", "serve", str(classify_run), "--port", str(port),
                                "--device", "cpu"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health and health["task"] == "classify"
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"inputs": ["服务很差，不推荐"]}).json()
        assert answer["data"][0]["label"] in ("0", "1")
    finally:
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=30)
    assert process.returncode == 0, log
    lines = log.splitlines()
    assert lines[0].startswith("nlplab serve: run (classify") and f"http://127.0.0.1:{port}/" in lines[0]
    assert any(" POST /v1/predict 200 " in line for line in lines) and lines[-1] == "nlplab serve: stopped"


@pytest.mark.parametrize("args, message", [(["--max-batch", "0"], "--max-batch must be >= 1"),
                                           (["--port", "70000"], "--port must be at most 65535")])
def test_bad_serve_flags_exit_2(classify_run, capsys, args, message):
    from nlplab.cli import main

    assert main(["serve", str(classify_run), *args]) == 2
    assert message in capsys.readouterr().err
