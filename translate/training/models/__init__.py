"""The trainers: one module per trainer class, each a subclass of its spec in
:mod:`translate.training.specs`, whose ``TRAINERS`` names the class and imports its module
when a run builds it (see CONTRIBUTING.md)."""
