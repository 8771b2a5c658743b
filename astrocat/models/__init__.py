"""Model cards, the bundled zoo, the studies' Keras architectures, training and export."""
