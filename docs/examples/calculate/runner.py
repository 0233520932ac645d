"""Run a user's calculate(inputs) inside a hull sandbox.

    python3 -I runner.py USER_FILE < inputs.json

Imports USER_FILE, calls calculate() on the JSON document read from stdin
and prints the result as one line of JSON on stdout. Whatever the user's
code prints goes to stderr, so stdout holds nothing but the result. An
exception in the user's code propagates: Python prints the traceback on
stderr and exits 1, which the sandbox reports as verdict exit_nonzero.
The limits (CPU, memory, processes, time, output) are the sandbox's job,
not this script's.
"""
import importlib.util
import json
import sys


def load(path):
    spec = importlib.util.spec_from_file_location("user_code", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/user_code.py"
    result_out = sys.stdout
    sys.stdout = sys.stderr  # the user's print() must not corrupt the result
    inputs = json.load(sys.stdin)
    result = load(path).calculate(inputs)
    json.dump(result, result_out)
    result_out.write("\n")
    result_out.flush()


if __name__ == "__main__":
    main()
