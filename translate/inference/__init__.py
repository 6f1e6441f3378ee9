"""Inference: translating images with a loaded model: the ``Translator`` (``translator``),
its option schema (``options``) and output formats (``formats``), padding to the network's
multiple (``padding``), the torch and onnxruntime backends (``backends``), the memory budget
(``memory``), export to TorchScript/ONNX (``export``) and a torchvision transform
(``transform``). Imports ``core``, ``networks``, ``data`` and ``models``; never ``training``
(it reads the generator file only)."""
