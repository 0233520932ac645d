"""The examples' common command line: where hulld is and the token."""
import argparse
import os
import sys

try:
    import hull
except ImportError:  # run from a checkout: sdk/python is one level up
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import hull


def parser(doc):
    ap = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0])
    ap.add_argument("--socket", default=None, help="hulld's socket (default /run/hull/hulld.sock)")
    ap.add_argument("--url", default=None, help="or hulld's https://HOST:PORT")
    ap.add_argument("--cafile", default=None, help="the CA of hulld's TLS certificate")
    ap.add_argument("--token", default=None, help="API token (default $HULL_TOKEN)")
    return ap


def client(a, cls=None):
    cls = cls or hull.Client
    return cls(socket_path=a.socket, url=a.url, token=a.token, cafile=a.cafile)
