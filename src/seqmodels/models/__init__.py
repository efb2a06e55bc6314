"""The model core: the LSTM encoder and its input layers, the task heads, the CRF, and the LightningModule."""
