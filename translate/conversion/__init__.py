"""Conversion jobs: folders and videos through a ``Translator``: the driver (``runner``), its
image and video sources (``convert``, ``video``), the output folder's manifest (``manifest``),
the results page (``report``), the run on Ray actors (``ray``) and the ``convert``,
``export``, ``info`` and ``models`` commands (``cli``). Imports ``inference`` and the layers
below it; never ``training`` or ``evaluation``."""
