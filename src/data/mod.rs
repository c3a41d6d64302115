//! Datasets and SimCLR's augmentations.
