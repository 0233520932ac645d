"""Prepare a sandbox once, keep it as a template, start several from it.

    python3 templates.py --token $TOKEN

The first sandbox is prepared by commands (a little service and its
data); ``sb.snapshot_template`` keeps its /tmp, limits and env, with a
start command (the service, started in each new sandbox) and a ready
command (the 201 comes once it exits 0). ``client.sandbox(template=...)``
then makes sandboxes that already hold the files and run the service;
each has its own copy. The template is removed at the end."""
import time

from _connect import client, parser

PREPARE = """
mkdir -p /tmp/app
seq 1 1000 > /tmp/app/numbers
printf 'awk "{s+=\\\\$1} END {print s}" /tmp/app/numbers > /tmp/app/sum; exec sleep 600' > /tmp/app/serve.sh
"""


def main(argv=None):
    a = parser(__doc__).parse_args(argv)
    c = client(a)
    with c.sandbox(limits={"tmp_size": "16M"}, env={"GREETING": "hello"}) as sb:
        sb.exec(["sh", "-c", PREPARE]).check()
        t = sb.snapshot_template("example-app", start_cmd=["sh", "/tmp/app/serve.sh"],
                                 ready_cmd=["test", "-s", "/tmp/app/sum"], ready_timeout="30s")
    print(f"template {t.name}: {t.files} files, {t.bytes} bytes, from {t.source}")
    try:
        for i in range(3):
            t0 = time.monotonic()
            with c.sandbox(template="example-app", metadata={"n": str(i)}) as new:
                ms = (time.monotonic() - t0) * 1000
                out = new.exec(["sh", "-c", "echo $GREETING; cat /tmp/app/sum"]).stdout.split()
                print(f"sandbox {new.id} ready in {ms:.0f} ms: {' '.join(out)}")
    finally:
        c.delete_template("example-app")
    print("templates left:", [x.name for x in c.templates()])


if __name__ == "__main__":
    main()
