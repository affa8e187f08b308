#!/usr/bin/env python3
"""Summarise the --junit-xml file of `python3 -m test` for cpython.sh.

    cpy_junit.py counts FILE   -> "run fail err skip" (one line)
    cpy_junit.py bad FILE      -> one "failure|error|skipped NAME" a line

A missing or unparsable file prints nothing and exits 1, so the caller can
tell "no result" (a crash or a timeout) from "0 tests".
"""
import sys
import xml.etree.ElementTree as ET


def cases(path):
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        kinds = [c.tag for c in tc if c.tag in ("failure", "error", "skipped")]
        yield tc.get("name", "?"), kinds


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("counts", "bad"):
        sys.exit("usage: cpy_junit.py counts|bad FILE")
    try:
        root = ET.parse(sys.argv[2]).getroot()
        all_cases = list(cases(sys.argv[2]))
    except (OSError, ET.ParseError):
        sys.exit(1)
    if sys.argv[1] == "counts":
        # The suite totals are unittest's own (testsRun, errors,
        # failures); errors in setUpClass have no testcase of their own.
        run = fail = err = 0
        for s in root.iter("testsuite"):
            run += int(s.get("tests", 0))
            fail += int(s.get("failures", 0))
            err += int(s.get("errors", 0))
        skip = sum(1 for _, k in all_cases if "skipped" in k)
        print(run, fail, err, skip)
    else:
        for name, kinds in all_cases:
            for k in kinds:
                print(k, name)


if __name__ == "__main__":
    main()
