"""seqmodels: LSTM sequence models (a tagger and a sentence classifier) on one padding-exact encoder."""

from seqmodels.models.encoder import EncoderConfig, EncoderOutput, LSTMEncoder

__all__ = ["EncoderConfig", "EncoderOutput", "LSTMEncoder"]
