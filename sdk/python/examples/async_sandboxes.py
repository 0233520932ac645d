"""hull.AsyncClient: several sandboxes at once from one asyncio program.

    python3 async_sandboxes.py --token $TOKEN [--count 3]

Each task makes a sandbox labelled with its number, streams a command's
output through an async callback and talks to a background process; the
list filtered by label finds them while they live."""
import asyncio
import sys

from _connect import client, hull, parser


async def one(c, i):
    async with c.sandbox(metadata={"example": "async", "n": str(i)}) as sb:
        out = []

        async def collect(text):
            out.append(text)

        r = await sb.exec(f"echo task {i}; echo $((6*{i}))", on_stdout=collect)
        p = await sb.start(["sh", "-c", "read -r x; echo \"echo: $x\""], stdin=True)
        await p.send_stdin(f"hello {i}\n")
        await p.close_stdin()
        echoed = b"".join([ch.data async for ch in p])
        found = await c.sandboxes(metadata={"example": "async", "n": str(i)})
        assert [s.id for s in found] == [sb.id]
        return i, r.verdict, "".join(out).split(), echoed.decode().strip()


async def main_async(a):
    c = client(a, hull.AsyncClient)
    for i, verdict, out, echoed in await asyncio.gather(*(one(c, i) for i in range(a.count))):
        print(f"task {i}: {verdict} {out} {echoed!r}")


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("--count", type=int, default=3)
    asyncio.run(main_async(ap.parse_args(argv)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hull.HullError as e:
        print(f"async_sandboxes: {e}", file=sys.stderr)
        sys.exit(2)
