//! Datasets, scorers and evaluations.
