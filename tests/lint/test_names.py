#!/usr/bin/env python3
"""Catch2 test names that ctest can run: catch_discover_tests registers each TEST_CASE under its
name, and ctest splits a name at ';' (a CMake list separator) into two tests that both fail; and
catch_discover_tests reads the names into a CMake list, where an unbalanced '[' (as in "[0, n)")
opens a bracket that swallows every later name of the file into one test that matches nothing.
Fails naming the file:line of every TEST_CASE whose name holds a ';' or unbalanced square
brackets; counts the names it read.

Usage: test_names.py REPO | --self-test
"""
import os
import re
import sys
import tempfile

NAME = re.compile(r'TEST_CASE\(\s*"((?:[^"\\]|\\.)*)"', re.S)


def balanced(name):
    depth = 0
    for c in name:
        depth += {"[": 1, "]": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


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
                line = text.count("\n", 0, m.start()) + 1
                where = f"{os.path.relpath(path, repo)}:{line}"
                if ";" in m.group(1):
                    errors.append(f"{where}: the test name holds ';', which ctest splits into two failing tests: "
                                  f"{m.group(1)!r}; use ',' or 'and'")
                if not balanced(m.group(1)):
                    errors.append(f"{where}: the test name has unbalanced square brackets, which make "
                                  f"catch_discover_tests merge the later tests into one that matches nothing: "
                                  f"{m.group(1)!r}; write ranges in words")
    return errors, names


def main():
    if sys.argv[1:] == ["--self-test"]:
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "tests"))
            open(os.path.join(tmp, "tests", "t.cpp"), "w").write(
                'TEST_CASE("fine, really", "[a]") {}\nTEST_CASE("one; two", "[b]") {}\n'
                'TEST_CASE("in [0, n)", "[c]") {}\nTEST_CASE("keeps [CLS]", "[d]") {}\n')
            errors, names = check(tmp)
            assert names == 4 and len(errors) == 2 and "t.cpp:2" in errors[0] and "t.cpp:3" in errors[1], (names, errors)
        print("test names self-test ok")
        return 0
    errors, names = check(sys.argv[1])
    for e in errors:
        print(e, file=sys.stderr)
    print(f"test names: {names} TEST_CASE names read, {len(errors)} with ';' or unbalanced brackets")
    return 1 if errors or names < 100 else 0


if __name__ == "__main__":
    sys.exit(main())
