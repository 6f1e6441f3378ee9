"""Apps: the features built on everything else: the web page and its API (``serve``), a run's
model-card folder for the Hugging Face Hub (``card``) and the ``evaluate`` command
(``evaluate``). The top layer: it may import any other part of ``translate``, and nothing but
the ``translate`` command (``translate.cli``) imports it."""
