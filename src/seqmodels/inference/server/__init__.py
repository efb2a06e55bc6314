"""``seqmodels-serve``: the command (:mod:`.cli`), the FastAPI application (:mod:`.app`) with its demo page
(``static/``), and the application's parts: its batcher, error shape, drain and metrics."""
