"""Inference: translating images with a loaded model: the ``Translator`` (``translator``),
its option schema (``options``) and output formats (``formats``), padding to the network's
multiple (``padding``), the torch, onnxruntime and openvino backends (``backends``), the
memory budget (``memory``), export to TorchScript/ONNX (``export``), int8 ONNX export
(``quantize``) and a torchvision transform (``transform``). Imports ``core``, ``networks``,
``data`` and ``models``; never ``training`` (it reads the generator file only)."""
