"""Evaluation: paired L1/PSNR/SSIM, diversity and FID/KID of image sets (`translate evaluate`)."""

from translate.evaluation.inception import (
    InceptionFeatures,
    fid,
    frechet_distance,
    kid,
    load_inception,
)
from translate.evaluation.scores import (
    PairedScores,
    SetScores,
    folder_images,
    model_images,
    paired_folder_images,
    score_pairs,
    score_sets,
)

__all__ = [
    "InceptionFeatures",
    "PairedScores",
    "SetScores",
    "fid",
    "folder_images",
    "frechet_distance",
    "kid",
    "load_inception",
    "model_images",
    "paired_folder_images",
    "score_pairs",
    "score_sets",
]
