"""The encoder's shapes, its padding invariance, and its final states against a hand computation."""

import pytest
import torch
from helpers import DIRECTIONS, padded_batch
from torch import nn

from seqmodels import LSTMEncoder

VOCAB = 50
TOKENS = range(2, VOCAB)  # the ids of real tokens: not <pad> (0) or <unk> (1)


# The article's three examples (one layer; two layers; two bidirectional layers), batch_first, input (B=3, T=5, 10).
@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "output_shape", "h_n_shape"),
    [(1, False, (3, 5, 20), (1, 3, 20)), (2, False, (3, 5, 20), (2, 3, 20)), (2, True, (3, 5, 40), (4, 3, 20))],
)
def test_article_examples_shapes(num_layers, bidirectional, output_shape, h_n_shape):
    lstm = nn.LSTM(10, 20, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    output, (h_n, c_n) = lstm(torch.randn(3, 5, 10))
    assert output.shape == output_shape and h_n.shape == h_n_shape and c_n.shape == h_n_shape

    encoder = LSTMEncoder(VOCAB, embedding_dim=10, hidden_size=20, num_layers=num_layers, bidirectional=bidirectional)
    encoded = encoder(*padded_batch([5, 3, 4], TOKENS))
    assert encoded.outputs.shape == output_shape
    assert encoded.final.shape == (3, output_shape[-1])
    assert encoded.h_n.shape == h_n_shape and encoded.c_n.shape == h_n_shape


def test_batch_first_false_puts_time_first_but_not_in_h_n():
    lstm = nn.LSTM(10, 20, num_layers=2, bidirectional=True)  # batch_first=False: input (T, B, E)
    output, (h_n, _) = lstm(torch.randn(5, 3, 10))
    assert output.shape == (5, 3, 40)
    assert h_n.shape == (4, 3, 20)  # h_n is (L*D, B, H) whatever batch_first says


def test_proj_size_shrinks_outputs_and_h_n_but_not_c_n():
    encoder = LSTMEncoder(VOCAB, embedding_dim=10, hidden_size=20, num_layers=2, bidirectional=True, proj_size=7)
    encoded = encoder(*padded_batch([5, 2], TOKENS))
    assert encoded.outputs.shape == (2, 5, 14)
    assert encoded.final.shape == (2, 14)
    assert encoded.h_n.shape == (4, 2, 7)
    assert encoded.c_n.shape == (4, 2, 20)
    assert encoder.output_size == 14


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("directions", list(DIRECTIONS))
def test_padding_never_changes_a_result(num_layers, directions):
    torch.manual_seed(num_layers)
    encoder = LSTMEncoder(VOCAB, 12, 16, num_layers=num_layers, dropout=0.3, **DIRECTIONS[directions]).eval()
    lengths = [7, 2, 5, 1, 7, 3]
    batch_ids, batch_lengths = padded_batch(lengths, TOKENS)
    batch = encoder(batch_ids, batch_lengths)
    padded = encoder(*padded_batch(lengths, TOKENS, pad_to=15))  # same tokens, much more padding
    for row, n in enumerate(lengths):
        alone = encoder(batch_ids[row : row + 1, :n], torch.tensor([n]))  # (1, n): no padding at all
        for other in (batch, padded):
            torch.testing.assert_close(other.outputs[row, :n], alone.outputs[0], atol=1e-6, rtol=0)
            torch.testing.assert_close(other.final[row], alone.final[0], atol=1e-6, rtol=0)
        assert padded.outputs[row, n:].abs().max() == 0  # zero at padded positions
    torch.testing.assert_close(batch.h_n, padded.h_n, atol=1e-6, rtol=0)
    torch.testing.assert_close(batch.c_n, padded.c_n, atol=1e-6, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_final_matches_a_hand_computation_on_the_unpadded_sequence(num_layers):
    torch.manual_seed(0)
    hidden = 16
    encoder = LSTMEncoder(VOCAB, 12, hidden, num_layers=num_layers, bidirectional=True).eval()
    token_ids, lengths = padded_batch([6, 3], TOKENS, pad_to=9)
    encoded = encoder(token_ids, lengths)

    row, n = 1, 3  # a short sentence in a long batch
    embedded = encoder.embedding(token_ids[row : row + 1, :n])  # (1, n, E), no padding at all
    output, (h_n, _) = encoder.lstm(embedded)  # (1, n, 2H), (L*2, 1, H)
    expected_final = torch.cat([h_n[-2, 0], h_n[-1, 0]])  # last layer: forward, backward
    torch.testing.assert_close(encoded.final[row], expected_final, atol=1e-6, rtol=0)
    # The forward state is the one after the last real token; the backward one after reading back to token 0.
    torch.testing.assert_close(encoded.final[row, :hidden], output[0, n - 1, :hidden], atol=1e-6, rtol=0)
    torch.testing.assert_close(encoded.final[row, hidden:], output[0, 0, hidden:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_separate_directions_are_two_stacks_one_reading_the_sentence_reversed(num_layers):
    """Each stack's last layer, run alone on the unpadded sentence (the backward one on it reversed), gives the
    outputs; ``final`` is the forward state at the last token ++ the backward state at the first."""
    torch.manual_seed(0)
    hidden = 16
    encoder = LSTMEncoder(VOCAB, 12, hidden, num_layers=num_layers, separate_directions=True).eval()
    token_ids, lengths = padded_batch([6, 3], TOKENS, pad_to=9)
    encoded = encoder(token_ids, lengths)
    assert encoded.outputs.shape == (2, 9, 2 * hidden) and encoded.h_n.shape == (2 * num_layers, 2, hidden)

    row, n = 1, 3
    embedded = encoder.embedding(token_ids[row : row + 1, :n])  # (1, n, E)
    forward, (forward_h, _) = encoder.lstm.forward_stack(embedded)  # (1, n, H), (L, 1, H)
    backward, (backward_h, _) = encoder.lstm.backward_stack(embedded.flip(1))  # read from the last token
    torch.testing.assert_close(encoded.outputs[row, :n], torch.cat([forward, backward.flip(1)], -1)[0], atol=1e-6,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(encoded.final[row], torch.cat([forward_h[-1, 0], backward_h[-1, 0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(encoded.h_n[:, row], torch.stack([forward_h, backward_h], 1).flatten(0, 1)[:, 0],
                               atol=1e-6, rtol=0)  # fmt: skip


def test_separate_directions_without_bidirectional_is_a_clear_error():
    with pytest.raises(ValueError, match="separate_directions needs bidirectional: true"):
        LSTMEncoder(VOCAB, 8, 8, bidirectional=False, separate_directions=True)


def test_zero_length_row_is_a_clear_error():
    encoder = LSTMEncoder(VOCAB, 8, 8)
    token_ids, _ = padded_batch([3, 3], TOKENS)
    with pytest.raises(ValueError, match=r"at least one token.*rows \[1\]"):
        encoder(token_ids, torch.tensor([3, 0]))


def test_length_longer_than_the_batch_is_a_clear_error():
    encoder = LSTMEncoder(VOCAB, 8, 8)
    token_ids, _ = padded_batch([3, 3], TOKENS)
    with pytest.raises(ValueError, match="exceeds the padded length"):
        encoder(token_ids, torch.tensor([3, 4]))
