"""Core: what every layer uses and nothing else owns: atomic file writes (``atomic``), where
and how a command runs (``runtime``: device, precision, ranks), checked ``torch.load``
(``torch_file``), downloads (``download``), optional extras (``extras``), the CLI's one
conversion of user errors (``errors``), the names options offer (``choices``), the check of
a named thing's keyword options (``options``), lazy package attributes (``lazy``), the
image metrics (``metrics``) and the paths of a training run's files (``run_dir``). The
lowest layer: it imports no other part of ``translate``."""
