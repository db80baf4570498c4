"""A digits-like image classifier: generated 8x8 glyphs, an MLP, and an accuracy evaluator."""
