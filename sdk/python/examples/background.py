"""A background process fed through its stdin, left, and re-attached.

    python3 background.py --token $TOKEN

``sb.start(cmd, stdin=True)`` returns a Process at once; ``send_stdin``
feeds it, iterating it reads its output; a reader that goes away (here:
a new Process object from ``sb.process(id)``, as another program would
make) reads on from where it wants, and ``wait()`` gives the Result."""
import sys

from _connect import client, hull, parser

# A tiny line-oriented service: it answers each line it reads.
SERVICE = "while read -r line; do echo \"got: $line\"; done; echo bye"


def main(argv=None):
    a = parser(__doc__).parse_args(argv)
    c = client(a)
    with c.sandbox(metadata={"example": "background"}) as sb:
        p = sb.start(["sh", "-c", SERVICE], stdin=True)
        print(f"started {p.id}: {sb.processes()}")
        for word in ("one", "two", "three"):
            p.send_stdin(word + "\n")
        # Read until the third answer, then go away.
        seen = b""
        for chunk in p:
            seen += chunk.data
            if seen.count(b"\n") >= 3:
                break
        print(seen.decode(), end="")
        # Someone else re-attaches by id and reads everything from the start.
        again = sb.process(p.id)
        again.close_stdin()
        r = again.wait(timeout=60)
        everything = b"".join(ch.data for ch in again.output(offset=0))
        print(f"re-attached to {again.id}: {everything.decode()!r}, verdict {r.verdict}")
        return 0 if r.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hull.HullError as e:
        print(f"background: {e}", file=sys.stderr)
        sys.exit(2)
