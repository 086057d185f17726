"""A classifier initialised from a pre-trained model, before fine-tuning: the three routes of issue 18.

    word vectors     the embedding rows of the tokens the vectors know are copied; the other rows keep their
                     N(0, 1) draw scaled by the vectors' standard deviation, so known and unknown rows share a scale
    recurrent LMs    a forward LM (and a backward one, trained on reversed text) give the bidirectional recurrent
                     encoder its first layer: forward weights to the forward direction, backward weights to the
                     reverse direction (ULMFiT, Howard & Ruder, 2018). With two LMs the embedding is both LMs'
                     side by side, e = [e_fwd ; e_bwd] (embed_dim = the sum of theirs), and each direction's
                     input weights read only its own LM's half: W_ih = [W_fwd 0] and [0 W_bwd], so before
                     fine-tuning each direction computes exactly its LM's states
    masked LM        the transformer encoder is the masked LM's encoder (BERT, Devlin et al., 2019)

Shapes must agree (the same tokenizer, embedding and hidden sizes); a mismatch is a ConfigError naming it.
The padding row of the embedding is set back to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlplab.errors import ConfigError
from nlplab.models.classifier import RECURRENT, TextClassifier
from nlplab.models.lm import RecurrentLM
from nlplab.models.mlm import MaskedLM
from nlplab.models.word_vectors import WordVectors


def copy_into(target: Tensor, source: Tensor, what: str) -> None:
    if target.shape != source.shape:
        raise ConfigError(f"{what}: the pre-trained model has shape {tuple(source.shape)}, the classifier "
                          f"{tuple(target.shape)}; give the classifier the pre-trained tokenizer and sizes")
    with torch.no_grad():
        target.copy_(source)


def zero_padding(classifier: TextClassifier) -> None:
    if classifier.cfg.pad_id is not None:
        with torch.no_grad():
            classifier.embedding.weight[classifier.cfg.pad_id].zero_()


def init_from_word_vectors(classifier: TextClassifier, vectors: WordVectors, vocab: dict[str, int]) -> int:
    """Seed the embedding from `vectors` (see the module docstring); returns how many rows were copied."""
    if classifier.cfg.model == "transformer":
        raise ConfigError("word vectors initialise the embedding of bow, textcnn and recurrent classifiers, not transformer")
    with torch.no_grad():
        classifier.embedding.weight.mul_(vectors.vectors.std())
    found = vectors.embedding_rows(vocab, classifier.embedding.weight)
    zero_padding(classifier)
    return found


def init_from_recurrent_lms(classifier: TextClassifier, forward: RecurrentLM, backward: RecurrentLM | None = None) -> None:
    """Copy the embedding and the first recurrent layer of the LMs into the classifier (see the module docstring)."""
    if classifier.cfg.model not in RECURRENT:
        raise ConfigError(f"recurrent LMs initialise rnn, lstm or gru classifiers, not {classifier.cfg.model!r}")
    lms = [lm for lm in (forward, backward) if lm is not None]
    embedding = torch.cat([lm.embed.weight for lm in lms], dim=1)
    copy_into(classifier.embedding.weight, embedding, f"embedding (embed_dim: the sum of the {len(lms)} LMs')")
    start = 0
    for lm, suffix in zip(lms, ("", "_reverse")):
        if type(lm.rnn) is not type(classifier.encoder):
            raise ConfigError(f"the LM is a {type(lm.rnn).__name__}, the classifier a {type(classifier.encoder).__name__}")
        own = lm.rnn.weight_ih_l0
        weight_ih = own.new_zeros(own.shape[0], embedding.shape[1])
        weight_ih[:, start : start + own.shape[1]] = own
        start += own.shape[1]
        copy_into(getattr(classifier.encoder, f"weight_ih_l0{suffix}"), weight_ih, f"weight_ih_l0{suffix}")
        for name in ("weight_hh", "bias_ih", "bias_hh"):
            copy_into(getattr(classifier.encoder, f"{name}_l0{suffix}"), getattr(lm.rnn, f"{name}_l0"), f"{name}_l0{suffix}")
    zero_padding(classifier)


def init_from_masked_lm(classifier: TextClassifier, mlm: MaskedLM) -> None:
    """The transformer classifier's encoder takes the masked LM's encoder weights."""
    if classifier.cfg.model != "transformer":
        raise ConfigError(f"a masked LM initialises the transformer classifier, not {classifier.cfg.model!r}")
    own = classifier.encoder.state_dict()
    for name, tensor in mlm.encoder.state_dict().items():
        copy_into(own[name], tensor, f"encoder.{name}")
