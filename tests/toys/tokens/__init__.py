"""A tiny next-token model on generated text: dict batches, a custom collate, and token accuracy / perplexity."""
