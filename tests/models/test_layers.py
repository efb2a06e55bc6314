"""The encoder's input-side blocks: character encoders, locked and word dropout; padding invariance with them."""

import pytest
import torch

from seqmodels import LSTMEncoder
from seqmodels.data.batching import pad_chars
from seqmodels.models.layers import CharCNN, CharLSTM, LockedDropout, word_dropout

CHAR_ENCODERS = {
    "cnn": lambda: CharCNN(num_chars=20, embedding_dim=6, channels=6, kernel_size=3),
    "lstm": lambda: CharLSTM(num_chars=20, embedding_dim=6, channels=6),
}


@pytest.mark.parametrize("char_encoder", list(CHAR_ENCODERS))
def test_char_encoder_ignores_padding_characters_and_padded_words(char_encoder):
    torch.manual_seed(0)
    chars = CHAR_ENCODERS[char_encoder]()
    words = [[[3, 4, 5], [6, 7]], [[8, 9, 10, 11]]]
    small = chars(pad_chars(words))  # (2, 2, W=4)
    wide = torch.zeros(2, 5, 9, dtype=torch.long)  # more words and longer words of padding
    wide[:, :2, :4] = pad_chars(words)
    large = chars(wide)
    assert small.shape == (2, 2, 6)
    torch.testing.assert_close(large[:, :2], small)
    assert large[:, 2:].abs().max() == 0
    assert small[1, 1].abs().max() == 0  # a padded word


def test_char_lstm_gives_each_words_final_states_read_from_its_own_ends(monkeypatch):
    torch.manual_seed(0)
    encoder = CharLSTM(num_chars=20, embedding_dim=6, channels=6)
    words = [[3, 4, 5], [6, 7], [8]]
    vectors = encoder(pad_chars([words]))[0]  # (3, 6)
    for word, vector in zip(words, vectors):
        _, (h_n, _) = encoder.lstm(encoder.embedding(torch.tensor([word])))  # (2, 1, 3): unpadded, nn.LSTM's own
        torch.testing.assert_close(vector, h_n[:, 0].flatten())  # forward after the last char, backward after the first

    monkeypatch.setattr("seqmodels.models.layers.maskable", lambda lstm: False)  # the packed path, as int8 runs
    torch.testing.assert_close(encoder(pad_chars([words]))[0], vectors)
    quantised = torch.ao.quantization.quantize_dynamic(encoder, {torch.nn.LSTM}, dtype=torch.qint8)  # int8 inference
    assert quantised(pad_chars([words])).shape == (1, 3, 6)  # runs packed: masked_lstm takes nn.LSTM only


@pytest.mark.parametrize("char_encoder", list(CHAR_ENCODERS))
def test_char_encoder_runs_each_distinct_word_once_with_each_words_own_vector_and_gradient(char_encoder):
    torch.manual_seed(0)
    chars = CHAR_ENCODERS[char_encoder]()
    words = [[[3, 4, 5], [6, 7], [3, 4, 5]], [[6, 7], [3, 4, 5], [8]]]  # two words, each seen more than once
    embedded = []
    chars.embedding.register_forward_hook(lambda module, inputs, output: embedded.append(output.size(0)))
    together = chars(pad_chars(words))  # (2, 3, 6)
    assert embedded == [3]  # three distinct words of five go through the encoder
    together.square().sum().backward()
    gradient = chars.embedding.weight.grad.clone()
    chars.zero_grad()
    alone = torch.stack([torch.stack([chars(pad_chars([[word]]))[0, 0] for word in sentence]) for sentence in words])
    torch.testing.assert_close(together, alone)  # every occurrence gets its word's vector
    alone.square().sum().backward()
    torch.testing.assert_close(gradient, chars.embedding.weight.grad)  # and passes back every occurrence's gradient


def test_locked_dropout_uses_one_mask_per_sentence():
    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    out = dropout(torch.ones(4, 7, 10))
    dropped = out == 0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # the same positions dropped at every time step
    assert torch.equal(dropout.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_word_dropout_replaces_real_tokens_only():
    torch.manual_seed(0)
    token_ids = torch.tensor([[5, 6, 7, 0, 0]] * 200)
    dropped = word_dropout(token_ids, p=0.3, unk_id=1, padding_id=0)
    assert (dropped[:, 3:] == 0).all()
    rate = (dropped[:, :3] == 1).float().mean().item()
    assert 0.2 < rate < 0.4


@pytest.mark.parametrize("char_encoder", list(CHAR_ENCODERS))
def test_padding_invariance_with_chars_and_cases(char_encoder):
    torch.manual_seed(0)
    encoder = LSTMEncoder(30, 8, 6, num_layers=2, num_chars=20, char_encoder=char_encoder, char_channels=6, num_cases=6,
                          dropout=0.2).eval()  # fmt: skip
    token_ids = torch.tensor([[3, 4, 5], [6, 7, 0]])
    char_ids = pad_chars([[[3, 4], [5], [6, 7, 8]], [[9], [10, 11]]])
    case_ids = torch.tensor([[1, 2, 1], [3, 1, 0]])
    batch = encoder(token_ids, torch.tensor([3, 2]), char_ids, case_ids)
    alone = encoder(token_ids[1:, :2], torch.tensor([2]), char_ids[1:, :2, :2], case_ids[1:, :2])
    torch.testing.assert_close(batch.outputs[1, :2], alone.outputs[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(batch.final[1], alone.final[0], atol=1e-6, rtol=0)


def test_pretrained_vectors_initialise_and_can_be_frozen():
    vectors = torch.randn(10, 4)
    encoder = LSTMEncoder(10, 4, 3, pretrained=vectors, freeze_embeddings=True)
    torch.testing.assert_close(encoder.embedding.weight, vectors)
    assert not encoder.embedding.weight.requires_grad


def test_a_checkpoint_that_named_the_character_encoder_char_cnn_still_loads():
    torch.manual_seed(0)
    trained = LSTMEncoder(30, 8, 6, num_chars=20, char_channels=6).state_dict()
    old_names = {key.replace("chars.", "char_cnn."): value for key, value in trained.items()}  # before 0.4
    assert any(key.startswith("char_cnn.") for key in old_names)
    encoder = LSTMEncoder(30, 8, 6, num_chars=20, char_channels=6)
    encoder.load_state_dict(old_names)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, trained[key])
