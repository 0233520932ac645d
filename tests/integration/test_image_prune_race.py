"""`hull image prune` racing `hull sandbox run --image` (docs/images.md:
"prune never deletes what a run uses").

A run marks its manifest in use (a shared flock on hull/using/<hex>) and
then checks that what it loaded is still there; prune walks the marks and
then sweeps what no name and no mark keeps. A mark made between prune's walk
and its sweep was missed, and the check after it passed while the sweep
had not yet reached the image: the run's layers were deleted under it (its
files vanished mid-run). No pause point exists in the code for this, so
the test repeats the race: an unnamed image (run by digest) that prune
takes, a prune made slow by junk blobs and layers, and runs started while
it works. Every run must either see its whole image or fail cleanly.
"""
import hashlib
import json
import os
import subprocess
import time

from conftest import HULL
from imagelib import File, busybox_layer, write_oci_layout

PROGRAM = "cat /etc/os-release; sleep 1; cat /etc/late; ls /bin | wc -l"
CLEAN_FAILURES = ("not found", "removed while it was being opened", "is not in the store")


def hull(root, *args):
    return subprocess.Popen([HULL, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HULL_IMAGE_ROOT=str(root)))


def junk(root, rnd, n=8000):
    """Blobs and layers no image names: work for prune's sweep."""
    blobs, layers = root / "blobs" / "sha256", root / "hull" / "layers"
    for i in range(n):
        hexd = hashlib.sha256(f"junk-{rnd}-{i}".encode()).hexdigest()
        (blobs / hexd).write_bytes(b"x")
        if i % 3 == 0:
            (layers / hexd).mkdir()
            (layers / hexd / "f").write_bytes(b"x")


def test_a_run_never_loses_its_image_to_a_concurrent_prune(tmp_path):
    root = tmp_path / "store"
    for rnd in range(6):
        img = write_oci_layout(
            root, "a", [busybox_layer(extra={"etc/os-release": File(f"ID=round{rnd}\n"),
                                             "etc/late": File("late\n")})],
            config={"Cmd": ["sh", "-c", PROGRAM]})
        for args in (("image", "prepare", "a"), ("image", "remove", "a")):
            out, err = (p := hull(root, *args)).communicate(timeout=300)
            assert p.returncode == 0, err
        junk(root, rnd)
        prune = hull(root, "image", "prune")
        runs = []
        for _ in range(8):
            time.sleep(0.02)  # spread the runs over the prune's work (not a threshold)
            runs.append(hull(root, "sandbox", "run", "--json", "--pull", "never", "--image",
                             img.digest))
        out, err = prune.communicate(timeout=300)
        assert prune.returncode == 0, err
        for run in runs:
            out, err = run.communicate(timeout=300)
            if run.returncode == 0:
                r = json.loads(out)
                assert (r["verdict"], r["stderr"]) == ("ok", ""), r
                lines = r["stdout"].splitlines()
                assert lines[:2] == [f"ID=round{rnd}", "late"] and int(lines[2]) > 10, r
            else:
                assert run.returncode == 125 and err.count("\n") == 1, err
                assert any(c in err for c in CLEAN_FAILURES), err
    # Nothing of the image is left once no run holds it.
    out, err = (p := hull(root, "image", "prune")).communicate(timeout=300)
    assert p.returncode == 0, err
    assert os.listdir(root / "hull" / "layers") == []
