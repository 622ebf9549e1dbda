"""Evaluation: lenient answer parsers (`parse`) and benchmark metrics (`metrics`).

    >>> from ground.eval.parse import first_span
    >>> from ground.eval.metrics import charades_scores
    >>> charades_scores([first_span("{0.0, 0.5}", duration=20.0)], [(0.0, 10.0)])["mIoU"]
    100.0

Parsers never raise on model output; metrics score unparsable answers (None) as 0 in the
denominator and report total / parsed / unparsable counts.
"""
