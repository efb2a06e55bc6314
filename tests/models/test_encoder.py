"""The encoder's shapes, its padding invariance, and its final states against a hand computation."""

import pytest
import torch
from helpers import DIRECTIONS, padded_batch
from torch import nn

from seqmodels import LSTMEncoder

VOCAB = 50
TOKENS = range(2, VOCAB)  # the ids of real tokens: not <pad> (0) or <unk> (1)
KERNELS = ["packed", "masked"]  # how the LSTM skips padding; "auto" is masked on the CPU


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


def test_batch_first_false_puts_time_first_but_not_in_h_n():
    lstm = nn.LSTM(10, 20, num_layers=2, bidirectional=True)  # batch_first=False: input (T, B, E)
    output, (h_n, _) = lstm(torch.randn(5, 3, 10))
    assert output.shape == (5, 3, 40)
    assert h_n.shape == (4, 3, 20)  # h_n is (L*D, B, H) whatever batch_first says


@pytest.mark.parametrize("kernel", KERNELS)
def test_proj_size_shrinks_outputs_and_h_n_but_not_c_n(kernel):
    encoder = LSTMEncoder(VOCAB, 10, 20, num_layers=2, bidirectional=True, proj_size=7, kernel=kernel)
    token_ids, lengths = padded_batch([5, 2], TOKENS)
    encoded = encoder(token_ids, lengths)
    assert encoded.outputs.shape == (2, 5, 14)
    assert encoded.final.shape == (2, 14)
    assert encoder.output_size == 14
    _, (h_n, c_n) = encoder.lstm(encoder.embed(token_ids))  # nn.LSTM's own final states
    assert h_n.shape == (4, 2, 7) and c_n.shape == (4, 2, 20)


@pytest.mark.parametrize("kernel", [*KERNELS, "auto"])  # auto: masked for the long ones alone, else packed
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("directions", list(DIRECTIONS))
def test_padding_never_changes_a_result(num_layers, directions, kernel):
    torch.manual_seed(num_layers)
    encoder = LSTMEncoder(VOCAB, 12, 16, num_layers=num_layers, dropout=0.3, kernel=kernel, **DIRECTIONS[directions])
    encoder.eval()
    lengths = [9, 2, 8, 1, 9, 3]
    batch_ids, batch_lengths = padded_batch(lengths, TOKENS)
    batch = encoder(batch_ids, batch_lengths)
    padded = encoder(*padded_batch(lengths, TOKENS, pad_to=15))  # same tokens, much more padding
    for row, n in enumerate(lengths):
        alone = encoder(batch_ids[row : row + 1, :n], torch.tensor([n]))  # (1, n): no padding at all
        for other in (batch, padded):
            torch.testing.assert_close(other.outputs[row, :n], alone.outputs[0], atol=1e-6, rtol=0)
            torch.testing.assert_close(other.final[row], alone.final[0], atol=1e-6, rtol=0)
        assert padded.outputs[row, n:].abs().max() == 0  # zero at padded positions


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("directions", list(DIRECTIONS))
def test_both_kernels_give_the_same_results_and_gradients(num_layers, directions):
    """The masked kernel (the CPU's default) against the packed one, on the same weights, in training mode:
    outputs, final states and every weight's gradient (dropout 0, so that no random mask differs)."""
    torch.manual_seed(0)
    encoder = LSTMEncoder(VOCAB, 12, 16, num_layers=num_layers, proj_size=0, **DIRECTIONS[directions])
    token_ids, lengths = padded_batch([7, 2, 5, 1], TOKENS, pad_to=9)
    results = {}
    for kernel in KERNELS:
        encoder.kernel = kernel
        encoder.zero_grad()
        encoded = encoder(token_ids, lengths)
        (encoded.outputs.square().sum() + encoded.final.sum()).backward()
        grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
        results[kernel] = encoded, grads
    (packed, packed_grads), (masked, masked_grads) = results["packed"], results["masked"]
    torch.testing.assert_close(masked.outputs, packed.outputs, atol=1e-6, rtol=0)
    torch.testing.assert_close(masked.final, packed.final, atol=1e-6, rtol=0)
    assert masked_grads.keys() == packed_grads.keys() and any("weight_hh" in name for name in masked_grads)
    for name, grad in masked_grads.items():
        torch.testing.assert_close(grad, packed_grads[name], atol=1e-5, rtol=1e-5, msg=name)


def test_auto_runs_masked_on_the_cpu_unless_the_batch_is_mostly_padding_or_the_layer_no_plain_lstm():
    encoder = LSTMEncoder(VOCAB, 12, 16, num_layers=2)
    embedded = torch.zeros(4, 10, 12)  # (B, T, E)
    assert encoder.runs_masked(embedded, torch.tensor([10, 9, 8, 8]))  # on the CPU, oneDNN's kernels
    assert not encoder.runs_masked(embedded, torch.tensor([10, 2, 3, 1]))  # masked would compute 60% padding
    assert not encoder.runs_masked(embedded[:, :5], torch.tensor([5, 5, 4, 4]))  # too few steps to pay
    encoder.lstm = nn.GRU(12, 16, 2, batch_first=True, bidirectional=True)  # a template user's swap
    assert not encoder.runs_masked(embedded, torch.tensor([10, 9, 8, 8]))
    encoder.kernel = "masked"
    with pytest.raises(ValueError, match="model.encoder.kernel masked runs batch-first nn.LSTM only"):
        encoder.runs_masked(embedded, torch.tensor([10, 9, 8, 8]))
    with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'packed', 'masked'\), got 'Masked'"):
        LSTMEncoder(VOCAB, 12, 16, kernel="Masked")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_lengths_of_any_integer_type(dtype):
    encoder = LSTMEncoder(VOCAB, 12, 16, kernel="masked").eval()
    token_ids, lengths = padded_batch([4, 3], TOKENS)
    expected = encoder(token_ids, lengths)
    torch.testing.assert_close(encoder(token_ids, lengths.to(dtype)).final, expected.final)


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
    assert encoded.outputs.shape == (2, 9, 2 * hidden)

    row, n = 1, 3
    embedded = encoder.embedding(token_ids[row : row + 1, :n])  # (1, n, E)
    forward, (forward_h, _) = encoder.lstm.forward_stack(embedded)  # (1, n, H), (L, 1, H)
    backward, (backward_h, _) = encoder.lstm.backward_stack(embedded.flip(1))  # read from the last token
    torch.testing.assert_close(encoded.outputs[row, :n], torch.cat([forward, backward.flip(1)], -1)[0], atol=1e-6,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(encoded.final[row], torch.cat([forward_h[-1, 0], backward_h[-1, 0]]), atol=1e-6, rtol=0)


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
