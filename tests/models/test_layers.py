"""The encoder's input-side blocks: character CNN, locked dropout, word dropout; and padding invariance with them."""

import torch

from seqmodels import LSTMEncoder
from seqmodels.data.batching import pad_chars
from seqmodels.models.layers import CharCNN, LockedDropout, word_dropout


def test_char_cnn_ignores_padding_characters_and_padded_words():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=20, embedding_dim=6, channels=5, kernel_size=3)
    words = [[[3, 4, 5], [6, 7]], [[8, 9, 10, 11]]]
    small = cnn(pad_chars(words))  # (2, 2, W=4)
    wide = torch.zeros(2, 5, 9, dtype=torch.long)  # more words and longer words of padding
    wide[:, :2, :4] = pad_chars(words)
    large = cnn(wide)
    assert small.shape == (2, 2, 5)
    torch.testing.assert_close(large[:, :2], small)
    assert large[:, 2:].abs().max() == 0
    assert small[1, 1].abs().max() == 0  # a padded word



def test_char_cnn_runs_each_distinct_word_once_with_each_words_own_vector_and_gradient():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=20, embedding_dim=6, channels=5, kernel_size=3)
    words = [[[3, 4, 5], [6, 7], [3, 4, 5]], [[6, 7], [3, 4, 5], [8]]]  # two words, each seen more than once
    convolved = []
    cnn.conv.register_forward_hook(lambda module, inputs, output: convolved.append(output.size(0)))
    together = cnn(pad_chars(words))  # (2, 3, 5)
    assert convolved == [3]  # three distinct words of five
    together.square().sum().backward()
    gradient = cnn.embedding.weight.grad.clone()
    cnn.zero_grad()
    alone = torch.stack([torch.stack([cnn(pad_chars([[word]]))[0, 0] for word in sentence]) for sentence in words])
    torch.testing.assert_close(together, alone)  # every occurrence gets its word's vector
    alone.square().sum().backward()
    torch.testing.assert_close(gradient, cnn.embedding.weight.grad)  # and passes back every occurrence's gradient

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


def test_padding_invariance_with_chars_and_cases():
    torch.manual_seed(0)
    encoder = LSTMEncoder(30, 8, 6, num_layers=2, num_chars=20, char_channels=5, num_cases=6, dropout=0.2).eval()
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
