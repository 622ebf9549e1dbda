"""What the Snakefile and the CLI share: the steps (`steps`), code fingerprints (`fingerprint`), and
why a job would run (`plan`)."""
