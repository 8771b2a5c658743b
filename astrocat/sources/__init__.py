"""Finding inputs, recognising their format by content, and reading them into arrays."""
