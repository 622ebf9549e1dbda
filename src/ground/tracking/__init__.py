"""tracking phase of the ground pipeline."""
