#!/usr/bin/env python3
"""Catch2 test names that ctest can run: catch_discover_tests registers each TEST_CASE under its
name, and ctest splits a name at ';' (a CMake list separator) into two tests that both fail.
Fails naming the file:line of every TEST_CASE whose name holds a ';'; counts the names it read.

Usage: test_names.py REPO | --self-test
"""
import os
import re
import sys
import tempfile

NAME = re.compile(r'TEST_CASE\(\s*"((?:[^"\\]|\\.)*)"', re.S)


def check(repo):
    errors, names = [], 0
    for dirpath, _, files in os.walk(os.path.join(repo, "tests")):
        for f in sorted(files):
            if not f.endswith(".cpp"):
                continue
            path = os.path.join(dirpath, f)
            text = open(path, encoding="utf-8").read()
            for m in NAME.finditer(text):
                names += 1
                if ";" in m.group(1):
                    line = text.count("\n", 0, m.start()) + 1
                    errors.append(f"{os.path.relpath(path, repo)}:{line}: the test name holds ';', which ctest "
                                  f"splits into two failing tests: {m.group(1)!r}; use ',' or 'and'")
    return errors, names


def main():
    if sys.argv[1:] == ["--self-test"]:
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "tests"))
            open(os.path.join(tmp, "tests", "t.cpp"), "w").write(
                'TEST_CASE("fine, really", "[a]") {}\nTEST_CASE("one; two", "[b]") {}\n')
            errors, names = check(tmp)
            assert names == 2 and len(errors) == 1 and "t.cpp:2" in errors[0], (names, errors)
        print("test names self-test ok")
        return 0
    errors, names = check(sys.argv[1])
    for e in errors:
        print(e, file=sys.stderr)
    print(f"test names: {names} TEST_CASE names read, {len(errors)} with ';'")
    return 1 if errors or names < 100 else 0


if __name__ == "__main__":
    sys.exit(main())
