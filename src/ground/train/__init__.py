"""train phase of the ground pipeline."""
