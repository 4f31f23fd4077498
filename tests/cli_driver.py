"""Runs one script's `main` on several argument lists in one process, as `python SCRIPT ARGS` would
(through `cli.run`), each under an alarm; prints one JSON line per case: exit code, seconds, stderr.

Used by test_cli_fuzz.py, so that the scripts that import torch and the Trainer pay that import once
(about 12 s on a busy 2-core machine) instead of once per case. stderr is captured at the file
descriptor, so tracebacks and log lines written by any library are seen too.

    python tests/cli_driver.py < [{"module": "dnabert2.embed", "prog": "embed.py", "timeout": 20, "cases": [[...], ...]}, ...]
"""

import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def main() -> None:
    specs = json.load(sys.stdin)
    from dnabert2 import cli

    signal.signal(signal.SIGALRM, _alarm)
    out = os.fdopen(os.dup(1), "w")
    for spec in specs:
        run_spec(cli, spec, out)


def run_spec(cli, spec: dict, out) -> None:
    module = importlib.import_module(spec["module"])
    for argv in spec["cases"]:
        sys.argv = [spec["prog"], *argv]
        with tempfile.TemporaryFile() as err:
            saved = os.dup(1), os.dup(2)
            os.dup2(err.fileno(), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            start = time.time()
            code = None
            signal.alarm(spec["timeout"])
            try:
                cli.run(module.main, argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except Hang:
                code = "hang"
            except BaseException:  # escaped cli.run: what a user would see as a traceback
                traceback.print_exc()
                code = "traceback"
            finally:
                signal.alarm(0)
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
            seconds = time.time() - start
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        out.write(json.dumps({"prog": spec["prog"], "argv": argv, "code": code, "seconds": round(seconds, 2), "stderr": text[-4000:]}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
