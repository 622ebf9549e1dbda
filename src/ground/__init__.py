"""ground: a reproducible pipeline for GroundingGPT-style multi-modal grounding models.

Run `ground --help` for the command line; every step is also a plain function in this package.
"""

__version__ = "0.1.0"
