"""Pure array functions (numpy): crops, scalings and the Galaxy Zoo decision-tree rule."""
