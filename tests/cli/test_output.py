"""`json_only`: every way a library writes to stdout ends on stderr; the JSON alone on stdout.

.venv/bin/pytest tests/cli/test_output.py -q
"""

import json
import subprocess
import sys

CODE = """
import logging, os, subprocess, sys
from ground_cli.output import json_only, print_json

log = logging.getLogger("lib")
log.addHandler(logging.StreamHandler(stream=sys.stdout))  # as DeepSpeed's: bound at import
log.setLevel(logging.INFO)
with json_only(True):
    print("a print")
    log.info("a log record")
    sys.__stdout__.write("unflushed text on the original stdout")
    os.write(1, b"C code writing to fd 1\\n")
    subprocess.run(["echo", "a child process"], check=True)
log.info("after")  # a logger bound to the real stdout writes there again
print_json({"ok": True})
"""


def test_everything_but_the_json_goes_to_stderr():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    first, _, rest = proc.stdout.partition("\n")
    assert first == "after" and json.loads(rest) == {"ok": True}, proc.stdout
    for text in ("a print", "a log record", "unflushed text", "C code", "a child process"):
        assert text in proc.stderr, proc.stderr


def test_disabled_leaves_stdout_alone():
    code = "from ground_cli.output import json_only\nwith json_only(False):\n    print('shown')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "shown\n"
