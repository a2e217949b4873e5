"""Runs Python unittest modules for the suites of tests/run_extra.sh and ends with the line
"N passed, N failed" that run_extra.sh adds up. An expected failure counts as passed (a known
gap, named in its test and listed here); an unexpected success fails, so that its marker goes.
Usage: python3 tests/run_unittest.py LABEL NAME...   (run in the directory of the modules)
"""

import signal
import sys
import unittest


def main(label: str, names: list) -> int:
    # SIGTERM (a CI timeout, a killed run) exits through atexit, where the suites kill the
    # daemons they started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, ".")
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    # An error in a class's tearDown counts as a failure beside its passed tests.
    passed = max(0, result.testsRun - failed - len(result.skipped))
    for test, _ in result.expectedFailures:
        print(f"known gap (expected failure): {test.id()}")
    print(f"{label}: {'ok' if failed == 0 else 'FAIL'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
