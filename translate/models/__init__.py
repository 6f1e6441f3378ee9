"""Models: the generator file (``model_file``: a trained generator's weights, spec and
preprocessing) and finding and loading a model from every source: bundled and pretrained
names (``loading``, ``pretrained``), the Hugging Face Hub (``hub``), reference pix2pix/CycleGAN
``.pth`` files (``reference``), community checkpoints (``community``, spandrel), and the
torch-free description of a file (``describe``); and the segmenter that scores label
models, trained on a label data set and cached beside it (``segmenter``). Imports ``core``,
``networks`` and ``data``; training and inference both stand on it, so it imports neither."""
