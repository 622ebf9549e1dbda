"""The generate step (rule generate_instructions): `run` is the step, with its GPT backends."""
