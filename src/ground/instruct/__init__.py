"""instruct phase of the ground pipeline."""
