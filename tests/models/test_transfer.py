import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertConfig
from nlplab.models.lm import LMConfig, build_lm
from nlplab.models.mlm import MaskedLM
from nlplab.models.transfer import init_from_masked_lm, init_from_recurrent_lms, init_from_word_vectors
from nlplab.models.word_vectors import WordVectors


def test_word_vectors_fill_known_rows_and_share_their_scale_with_the_rest():
    torch.manual_seed(0)
    net = TextClassifier(ClassifierConfig(model="bow", vocab_size=500, embed_dim=8, pad_id=0))
    vectors = WordVectors(["好", "坏"], 0.01 * torch.randn(2, 8))
    found = init_from_word_vectors(net, vectors, {"[PAD]": 0, "好": 1, "坏": 2, **{f"w{i}": i for i in range(3, 500)}})
    weight = net.embedding.weight.detach()
    assert found == 2 and torch.equal(weight[1:3], vectors.vectors) and weight[0].abs().sum() == 0
    assert abs(float(weight[3:].std() / vectors.vectors.std()) - 1) < 0.1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_lms_give_each_direction_of_the_classifier_its_lm(cell):
    torch.manual_seed(0)
    lm_cfg = LMConfig(model=cell, vocab_size=20, embed_dim=6, hidden_size=5, layers=1, dropout=0.0)
    forward, backward = build_lm(lm_cfg).eval(), build_lm(lm_cfg).eval()
    net = TextClassifier(ClassifierConfig(model=cell, vocab_size=20, embed_dim=12, hidden_size=5, pad_id=0)).eval()
    init_from_recurrent_lms(net, forward, backward)
    ids = torch.randint(1, 20, (3, 7))
    outputs, _ = net.encoder(net.embedding(ids), torch.full((3,), 7))
    with torch.no_grad():
        ahead, _ = forward.rnn(forward.embed(ids))
        behind, _ = backward.rnn(backward.embed(ids.flip(1)))
    torch.testing.assert_close(outputs[..., :5], ahead)
    torch.testing.assert_close(outputs[..., 5:], behind.flip(1))
    assert net.embedding.weight[0].abs().sum() == 0


def test_a_shape_mismatch_names_the_tensor():
    lm = build_lm(LMConfig(model="lstm", vocab_size=20, embed_dim=6, hidden_size=5, layers=1))
    net = TextClassifier(ClassifierConfig(model="lstm", vocab_size=20, embed_dim=6, hidden_size=7))
    with pytest.raises(ConfigError, match="weight_ih_l0"):
        init_from_recurrent_lms(net, lm)
    with pytest.raises(ConfigError, match="embed_dim: the sum of the 2 LMs"):
        init_from_recurrent_lms(TextClassifier(ClassifierConfig(model="lstm", vocab_size=20, embed_dim=6, hidden_size=5)), lm, lm)
    with pytest.raises(ConfigError, match="not 'bow'"):
        init_from_recurrent_lms(TextClassifier(ClassifierConfig(model="bow", vocab_size=20)), lm)


def test_masked_lm_encoder_becomes_the_classifier_encoder():
    torch.manual_seed(0)
    bert = BertConfig(vocab_size=30, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16, max_position_embeddings=10)
    mlm = MaskedLM(bert).eval()
    fields = {k: v for k, v in vars(bert).items() if k != "impl"}
    net = TextClassifier(ClassifierConfig(model="transformer", vocab_size=30, bert=fields)).eval()
    init_from_masked_lm(net, mlm)
    ids, mask = torch.randint(1, 30, (2, 10)), torch.ones(2, 10, dtype=torch.bool)
    torch.testing.assert_close(net.encoder(ids, mask), mlm.encoder(ids, mask))
