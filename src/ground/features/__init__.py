"""features phase of the ground pipeline."""
