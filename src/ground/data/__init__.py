"""data phase of the ground pipeline."""
