"""Inference: load models, translate images and folders, export generators."""
