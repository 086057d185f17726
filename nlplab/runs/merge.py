"""A trained run written as a Hugging Face folder that loads without nlplab (`nlplab peft merge RUN --out DIR`).

A PEFT run's adapter is folded into its base first (LoRA: W + (α/r)·B A; QLoRA: the same over the dequantised
4-bit weights; BitFit: the trained biases in place); adapters, prompts and prefixes add computation that a plain
checkpoint cannot hold, so those runs cannot be merged. The run's transformer is then written by its
`save_pretrained` — a BertEncoder as transformers' `BertModel`, a GPT as `GPT2LMHeadModel` — with the run's
tokenizer (tokenizer.json). A task head (a classifier's mean pooling and Linear, a tagger's Linear and CRF, a
matcher's projection) is no transformers architecture: its tensors go to `head.safetensors` under their nlplab
names (head.weight, head.bias, …), readable by any safetensors loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file

from nlplab.errors import ConfigError
from nlplab.io import atomic_write
from nlplab.peft import PeftModel, head_modules
from nlplab.peft.layout import single_backbone
from nlplab.runs.base import RunPredictor, load_run

HEAD_FILE = "head.safetensors"


@dataclass
class Merged:
    """What `merge_run` wrote: the transformers class of the folder, the method folded in (None: a full run) and
    the task head's modules (empty for a language model)."""

    folder: Path
    architecture: str
    method: str | None
    heads: tuple[str, ...]


def merge_run(run: str | Path, out: str | Path) -> Merged:
    """Write run `run` (adapter merged) to `out` as a Hugging Face folder, its head beside it (module docstring)."""
    out = Path(out)
    if (out / "config.json").exists() or (out / "config.yaml").exists():
        raise ConfigError(f"{out}: already holds a model; choose another --out")
    predictor = load_run(run, "cpu")
    if not isinstance(predictor, RunPredictor) or predictor.cfg.model == "ngram":
        raise ConfigError(f"{run}: not an nlplab run with a transformer; pass the --out folder of `nlplab train`")
    model = predictor.model
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    backbone = single_backbone(model, "nlplab peft merge").module
    backbone.save_pretrained(out)
    predictor.tokenizer.save(out)
    heads = head_modules(model)
    if heads:
        tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for name in heads
                   for k, v in model.get_submodule(name).state_dict().items()}
        atomic_write(out / HEAD_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    architecture = "GPT2LMHeadModel" if predictor.cfg.task == "lm" else "BertModel"
    return Merged(out, architecture, predictor.cfg.peft, heads)
