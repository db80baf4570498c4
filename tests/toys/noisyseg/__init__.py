"""A user's own segmenter with Dropout (global-RNG noise in every training step), for the kill-and-resume tests."""
