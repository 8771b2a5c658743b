"""One small protocol -- load a card, predict a batch -- and its implementations."""
