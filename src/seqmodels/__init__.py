"""seqmodels: LSTM sequence models (a tagger and a sentence classifier) on one padding-exact encoder."""
