"""Image reading, datasets, augmentation and dataset tools."""
