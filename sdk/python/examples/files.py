"""Files in and out of a sandbox: a streamed upload, a listing, a watch,
a streamed download checked by digest.

    python3 files.py --token $TOKEN [FILE]

FILE (default: 8 MiB of random bytes) is streamed up from disk with
chunked encoding, so its size is bounded only by the sandbox's disk
(``limits.tmp_size``; PayloadTooLarge names the limit when over)."""
import hashlib
import os
import sys
import tempfile

from _connect import client, hull, parser


def main(argv=None):
    ap = parser(__doc__)
    ap.add_argument("file", nargs="?")
    a = ap.parse_args(argv)
    c = client(a)
    src = a.file
    if src is None:
        fd, src = tempfile.mkstemp()
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(8 << 20))
    with open(src, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    with c.sandbox(limits={"tmp_size": "512M"}) as sb:
        sb.files.mkdir("/tmp/data")
        with sb.files.watch("/tmp/data") as w:
            with open(src, "rb") as f:
                entry = sb.files.write("/tmp/data/blob", f)
            print(f"uploaded {entry.path}: {entry.size} bytes, mode {entry.mode}")
            print("first event:", next(w))  # the upload's, once it is in place
        for e in sb.files.list("/tmp"):
            print(f"  {e.type:7} {e.mode} {e.size:>10} {e.mtime} {e.name}")
        digest = hashlib.sha256()
        for block in sb.files.read_stream("/tmp/data/blob"):
            digest.update(block)
        print("digest", "matches" if digest.hexdigest() == want else "DIFFERS")
        sb.files.rename("/tmp/data/blob", "/tmp/data/blob.old")
        sb.files.remove("/tmp/data", recursive=True)
        return 0 if digest.hexdigest() == want else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hull.HullError as e:
        print(f"files: {e}", file=sys.stderr)
        sys.exit(2)
