"""Parameter-efficient fine-tuning over any nlplab model, by module name: BitFit, Houlsby adapters, prompt tuning,
prefix tuning, LoRA and QLoRA (NF4), saving and loading adapters in Hugging Face PEFT's layout.

Submodules: config (one config per method), lora, nf4 (4-bit NormalFloat by hand), qlora (Linear4bit, memory),
adapters, virtual (prompt and prefix tokens), layout (PEFT's file layout and names), model (PeftModel)."""

from nlplab.peft.config import (
    METHODS,
    AdapterConfig,
    BitFitConfig,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    QLoraConfig,
    build_config,
)
from nlplab.peft.layout import head_modules
from nlplab.peft.model import PeftModel, get_peft_model, parameter_counts, parameter_summary
from nlplab.peft.qlora import Linear4bit, memory_report

__all__ = ["METHODS", "AdapterConfig", "BitFitConfig", "Linear4bit", "LoraConfig", "PeftConfig", "PeftModel",
           "PrefixTuningConfig", "PromptTuningConfig", "QLoraConfig", "build_config", "get_peft_model", "head_modules",
           "memory_report", "parameter_counts", "parameter_summary"]
