"""Output as it is produced: a command's lines printed while it runs.

    python3 streaming.py --token $TOKEN [--lines 5]

``sb.exec(..., on_stdout=fn, on_stderr=fn)`` calls back with each piece
of output (text) as hulld streams it, and returns the Result at the end,
as a plain exec would."""
import sys
import time

from _connect import client, hull, parser


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--lines", type=int, default=5)
    a = ap.parse_args(argv)
    c = client(a)
    with c.sandbox(metadata={"example": "streaming"}) as sb:
        t0 = time.monotonic()

        def show(prefix):
            def out(text):
                for line in text.splitlines():
                    print(f"{time.monotonic() - t0:6.2f}s {prefix} {line}", flush=True)
            return out

        script = (f"for i in $(seq 1 {a.lines}); do echo line $i; "
                  "echo warning $i >&2; sleep 0.2; done")
        r = sb.exec(["sh", "-c", script], on_stdout=show("out"), on_stderr=show("err"),
                    timeout=60)
        print(f"verdict {r.verdict}, exit code {r.exit_code}")
        return 0 if r.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hull.HullError as e:
        print(f"streaming: {e}", file=sys.stderr)
        sys.exit(2)
