"""model phase of the ground pipeline."""
