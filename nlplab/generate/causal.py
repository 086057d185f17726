"""A causal language model ready to generate text, with its tokenizer, end token, context length and chat template,
and `generate` over every decoding strategy.

Sources: an nlplab run of `nlplab train --task lm` (built by `nlplab.runs`), with the simple chat template
`问：{query}\\n答：{response}\\n` per turn; or (`load_causal_lm`)
- a Hugging Face folder (config.json, model.safetensors, tokenizer.json): GPT-2 runs on nlplab's own GPT;
  other architectures (Llama, Qwen2, ...) run on `transformers` when it is installed. The tokenizer is read by
  nlplab from tokenizer.json, and the chat template from tokenizer_config.json is rendered with Jinja as
  Hugging Face renders it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError, RunError
from nlplab.generate.beam import beam_search
from nlplab.generate.decoding import Step, argmax_picker, decode_steps, sampler, stream
from nlplab.generate.detokenize import Detokenizer
from nlplab.io import read_json_object
from nlplab.nn.functional import at_least_float32
from nlplab.rlhf.logprobs import token_logprobs
from nlplab.runtime import compile_model, resolve_device

STRATEGIES = ("greedy", "beam", "sample")
NLPLAB_TEMPLATE = "问：{query}\n答：{response}\n"
Message = dict[str, str]


@dataclass
class Generated:
    """One output: the generated continuation ids (prompt excluded), its text (None for a model without a
    tokenizer), and its score (beam: the length-penalised beam score; greedy and sample: the sum of the model's
    log-probabilities of the ids)."""

    ids: list[int]
    text: str | None
    score: float


@dataclass
class CausalLM:
    step: Step
    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    eos_id: int | None
    context: int | None
    render_chat: Callable[[list[Message]], str]
    name: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    has_tokenizer: bool = True
    vocab_size: int | None = None

    def check_ids(self, ids: Sequence[int]) -> None:
        """Token ids must lie in the vocabulary (when its size is known)."""
        bad = [i for i in ids if i < 0 or (self.vocab_size is not None and i >= self.vocab_size)]
        if bad:
            raise ConfigError(f"token id {bad[0]} is outside the vocabulary of {self.name} "
                              f"(0 … {self.vocab_size - 1 if self.vocab_size else 'its size'})")

    def room(self, prompt_len: int, max_new_tokens: int) -> int:
        """max_new_tokens, capped so that prompt and continuation fit the context; an error when nothing fits."""
        if prompt_len == 0:
            raise ConfigError("the prompt is empty; give some text or ids")
        if self.context is None:
            return max_new_tokens
        if prompt_len >= self.context:
            raise ConfigError(f"the prompt has {prompt_len} tokens, but {self.name} reads at most {self.context}; "
                              "shorten the prompt")
        return min(max_new_tokens, self.context - prompt_len)

    def compile(self) -> None:
        """Decode under torch.compile from now on, with dynamic shapes (the prompt length and the growing cache
        would otherwise compile again at each new length): a module is compiled in place, so it keeps its class
        (continuous batching still recognises nlplab's GPT); a step function is wrapped."""
        if isinstance(self.step, nn.Module):
            compile_model(self.step, dynamic=True)
        else:
            self.step = torch.compile(self.step, dynamic=True)


def nlplab_chat(messages: list[Message]) -> str:
    """The template of nlplab LMs: each finished turn `问：q\\n答：r\\n`, then `问：q\\n答：` for the new query."""
    text, query = "", None
    for m in messages:
        if m["role"] == "user":
            query = m["content"]
        elif m["role"] == "assistant" and query is not None:
            text += NLPLAB_TEMPLATE.format(query=query, response=m["content"])
            query = None
    return text + (NLPLAB_TEMPLATE.split("{response}")[0].format(query=query) if query is not None else "")


def jinja_chat(template: str, special: dict[str, Any]) -> Callable[[list[Message]], str]:
    """Render a Hugging Face chat template (Jinja, trim_blocks and lstrip_blocks as HF sets them) with the
    generation prompt added."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)

    def render(messages: list[Message]) -> str:
        try:
            return compiled.render(messages=messages, add_generation_prompt=True, **special)
        except TemplateError as e:
            raise ConfigError(f"the model's chat template failed: {e}") from None

    return render


def token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def load_causal_lm(path: str | Path, device: str = "auto") -> CausalLM:
    """A Hugging Face causal-LM folder (see the module docstring). The tokenizer is read only when the folder has
    one: ids in, ids out needs none."""
    from nlplab.text import load_tokenizer

    folder, dev = Path(path), resolve_device(device)
    config = read_json_object(folder / "config.json", RunError, "pass a Hugging Face causal-LM folder or an nlplab run")
    has_tokenizer = (folder / "tokenizer.json").is_file()
    if has_tokenizer:
        tokenizer = load_tokenizer(folder)
        encode, decode = tokenizer.encode, tokenizer.decode
    else:
        def encode(*_: Any) -> Any:
            raise ConfigError(f"{folder}: no tokenizer.json, so text cannot be encoded or decoded; give the prompt as "
                              "token ids (--prompt-ids) and read the ids of the answer")
        decode = encode
    tok_config = read_json_object(folder / "tokenizer_config.json", RunError, "") if (folder / "tokenizer_config.json").is_file() else {}
    eos = config.get("eos_token_id")
    eos_id = eos[0] if isinstance(eos, list) else eos
    template = tok_config.get("chat_template")
    special = {k: token_text(tok_config.get(k)) for k in ("bos_token", "eos_token")}
    render = jinja_chat(template, special) if template else nlplab_chat
    if config.get("model_type") == "gpt2":
        from nlplab.models.gpt import GPT

        model = GPT.from_pretrained(folder).to(dev).eval()
        return CausalLM(model, encode, decode, eos_id, model.cfg.block_size, render, str(folder), dev, has_tokenizer,
                        model.cfg.vocab_size)
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise ConfigError(f"{folder}: a {config.get('model_type')} model runs on the `transformers` package; "
                          "pip install transformers (nlplab runs GPT-2 folders itself)") from None
    if not any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        raise RunError(f"{folder}: no model.safetensors; nlplab never loads pickled weights (pytorch_model.bin), which can run "
                       "code when read: convert the checkpoint to safetensors first")
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True).to(dev).eval()

    def step(ids: Tensor, cache: Any) -> tuple[Tensor, Any]:
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        return out.logits, out.past_key_values

    context = config.get("max_position_embeddings") or config.get("n_positions")
    return CausalLM(step, encode, decode, eos_id, context, render, str(folder), dev, has_tokenizer, config.get("vocab_size"))


def picker(strategy: str, temperature: float, top_k: int | None, top_p: float | None, repetition_penalty: float,
           seed: int | None):
    """The token picker of greedy or sampling decoding; options are checked here so bad ones fail before decoding."""
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"--top-p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {top_k}")
    if temperature < 0 or math.isnan(temperature):
        raise ConfigError(f"--temperature must be >= 0, got {temperature}")
    if repetition_penalty <= 0:
        raise ConfigError(f"--repetition-penalty must be > 0, got {repetition_penalty}")
    if strategy == "greedy" or temperature == 0:
        return argmax_picker
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return sampler(temperature, top_k, top_p, repetition_penalty, generator)


class Continuation:
    """One continuation as its ids arrive: `ids` (EOS left out), `logprob` (the sum of their log-probabilities),
    `text` (a Detokenizer; None for a model without a tokenizer when no stop string is given) and `done`, set by EOS
    or a stop string (the text cut before it)."""

    def __init__(self, lm: CausalLM, stop: Sequence[str] = ()) -> None:
        self.eos_id = lm.eos_id
        self.text = Detokenizer(lm.decode, stop) if lm.has_tokenizer or stop else None
        self.ids: list[int] = self.text.ids if self.text is not None else []
        self.logprob = 0.0
        self.done = False

    def add(self, token: int, logprob: float = 0.0) -> None:
        if self.done:
            return
        if token == self.eos_id:
            self.done = True
            return
        self.logprob += logprob
        if self.text is None:
            self.ids.append(token)
        else:
            self.done = self.text.add(token)

    def generated(self, score: float | None = None) -> Generated:
        """The continuation, scored by its log-probability unless another `score` is given."""
        return Generated(list(self.ids), None if self.text is None else self.text.full,
                         self.logprob if score is None else score)


def stream_text(lm: CausalLM, prompt_ids: Sequence[int], pick: Any, max_new_tokens: int,
                stop: Sequence[str] = ()) -> Iterator[tuple[list[int], str | None]]:
    """Decode one prompt token by token; yield (ids so far, text so far: None without a tokenizer) after each token,
    ending early at EOS (left out) or when a stop string appears (cut before it). The text grows by whole
    characters (`Detokenizer`): a character split across tokens appears with the token that completes it, and a
    continuation that ends inside one is yielded once more with its text as decode() gives it (U+FFFD at the end)."""
    prompt = torch.tensor(list(prompt_ids), device=lm.device)
    row = Continuation(lm, stop)
    for token in stream(lm.step, prompt, lm.room(len(prompt), max_new_tokens), lm.eos_id, sampling_on_cpu(pick)):
        if token.item() == lm.eos_id:
            break
        row.add(token.item())
        yield list(row.ids), None if row.text is None else row.text.text
        if row.done:
            return
    if row.text is not None and row.text.pending:
        yield list(row.ids), row.text.full


def sampling_on_cpu(pick: Any) -> Any:
    """Seeded generators live on the CPU: draw there, so a seed gives the same text on every device."""
    return lambda logits, history: pick(logits.float().cpu(), history.cpu()).to(logits.device)


def generate(lm: CausalLM, prompt_ids: Sequence[int], strategy: str = "greedy", max_new_tokens: int = 50,
             num_beams: int = 4, length_penalty: float = 1.0, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, repetition_penalty: float = 1.0, num_return: int = 1, seed: int | None = None,
             stop: Sequence[str] = ()) -> list[Generated]:
    """`num_return` continuations of one prompt by `strategy` (greedy, beam or sample), best first for beam."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if num_return < 1:
        raise ConfigError(f"--num-return must be >= 1, got {num_return}")
    if num_beams < 1:
        raise ConfigError(f"--beams must be >= 1, got {num_beams}")
    prompt = torch.tensor(list(prompt_ids), dtype=torch.long, device=lm.device)
    budget = lm.room(len(prompt), max_new_tokens)
    if strategy == "beam":
        if num_return > num_beams:
            raise ConfigError(f"--num-return ({num_return}) cannot exceed --beams ({num_beams})")
        results = []
        for h in beam_search(lm.step, prompt, budget, lm.eos_id, num_beams, length_penalty, num_return=num_return):
            row = Continuation(lm, stop)
            for token in h.ids.tolist():
                row.add(token)
            results.append(row.generated(h.score))
        return results
    if strategy == "greedy" and num_return > 1:
        raise ConfigError("greedy decoding has one result; use --strategy sample or beam for --num-return > 1")
    pick = picker(strategy, temperature, top_k, top_p, repetition_penalty, seed)
    rows = [Continuation(lm, stop) for _ in range(num_return)]
    for tokens, logits in decode_steps(lm.step, prompt.repeat(num_return, 1), budget, lm.eos_id, sampling_on_cpu(pick)):
        for row, token, logprob in zip(rows, tokens.tolist(), token_logprobs(at_least_float32(logits), tokens).tolist()):
            row.add(token, logprob)
        if all(row.done for row in rows):
            break
    return [row.generated() for row in rows]
