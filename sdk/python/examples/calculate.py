"""A user's ``calculate(inputs)`` run in a hull sandbox, through hulld.

The case from the sandbox issue: a service lets users write

    def calculate(inputs):
        return ...

and wants the JSON result for JSON inputs, with CPU, memory, process and
time limits, no network and a read-only filesystem. This is that service's
side, written against the SDK:

    python3 calculate.py --token $TOKEN user_code.py inputs.json
    python3 calculate.py --socket /run/hull/hulld.sock --token $TOKEN --demo

A tiny runner (RUNNER below) travels with the user's file in the run
request's ``files`` (both land in the sandbox's /tmp); it imports the file,
calls calculate() on the JSON read from stdin and prints the JSON result as
the only thing on stdout. The service reads ``verdict`` first and only
parses stdout when it is "ok".
"""
import argparse
import json
import os
import sys

try:
    import hull
except ImportError:  # run from a checkout: sdk/python is one level up
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import hull

# The limits of one calculation: 2 s of CPU for all its processes, 5 s of
# wall clock, 128 MiB without swap, 16 processes, 64 KiB of output.
LIMITS = {"cpu_time": "2s", "wall_time": "5s", "memory": "128M", "pids": 16, "output": "64K"}

RUNNER = '''\
import importlib.util
import json
import sys

def main():
    spec = importlib.util.spec_from_file_location("user_code", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    result_out = sys.stdout
    sys.stdout = sys.stderr  # whatever the user prints must not corrupt the result
    spec.loader.exec_module(module)
    result = module.calculate(json.load(sys.stdin))
    result_out.write(json.dumps(result) + "\\n")
    result_out.flush()

main()
'''

DEMO_CODE = '''\
import statistics

def calculate(inputs):
    values = [float(v) for v in inputs["values"]]
    return {"count": len(values), "mean": statistics.fmean(values), "max": max(values),
            "scaled": [v * inputs.get("factor", 1) for v in values]}
'''
DEMO_INPUTS = {"values": [3, 1.5, 4, 1, 5.5], "factor": 2}


class CalculationFailed(Exception):
    """The user's function did not return a result: ``result.verdict`` says
    why (exit_nonzero with the traceback in ``result.stderr``,
    cpu_time_limit, memory_limit, pids_limit, wall_time_limit, ...)."""

    def __init__(self, result):
        self.result = result
        detail = result.stderr.strip().splitlines()[-1:] or [result.error or ""]
        super().__init__(f"{result.verdict}: {detail[0]}")


def calculate(client, user_code, inputs, limits=LIMITS, isolation="container"):
    """Run user_code's calculate(inputs) in a fresh sandbox; its result."""
    r = client.run(["python3", "-I", "/tmp/runner.py", "/tmp/user_code.py"],
                   stdin=json.dumps(inputs),
                   files={"runner.py": RUNNER, "user_code.py": user_code},
                   limits=limits, isolation=isolation)
    if not r.ok:
        raise CalculationFailed(r)
    return json.loads(r.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", default=None, help="hulld's socket (default /run/hull/hulld.sock)")
    ap.add_argument("--url", default=None, help="or hulld's https://HOST:PORT")
    ap.add_argument("--token", default=None, help="API token (default $HULL_TOKEN)")
    ap.add_argument("--demo", action="store_true", help="run the built-in example")
    ap.add_argument("user_code", nargs="?", help="a Python file defining calculate(inputs)")
    ap.add_argument("inputs", nargs="?", help="a JSON file with the inputs")
    a = ap.parse_args(argv)
    if a.demo:
        code, inputs = DEMO_CODE, DEMO_INPUTS
    elif a.user_code and a.inputs:
        with open(a.user_code) as f:
            code = f.read()
        with open(a.inputs) as f:
            inputs = json.load(f)
    else:
        ap.error("give USER_CODE and INPUTS, or --demo")
    client = hull.Client(socket_path=a.socket, url=a.url, token=a.token)
    try:
        print(json.dumps(calculate(client, code, inputs)))
    except CalculationFailed as e:
        print(f"calculate: {e}", file=sys.stderr)
        return 1
    except hull.HullError as e:
        print(f"calculate: hulld: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
