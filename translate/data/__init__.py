"""Data: image reading and writing (``images``), dataset layouts and datasets (``layout``,
``datasets``), label maps as training data (``labels``), preprocessing and augmentation
(``transforms``, ``augment``, ``gpu_augment``), super-resolution degradations
(``degradations``) and the dataset tools (``translate prepare``, ``translate data``).
Imports ``core`` only: data knows nothing of networks, models, training or inference."""
