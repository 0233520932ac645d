"""The manual pages (docs/man) against the programs: every option that
`--help` lists is in the page and every option the page names exists, each
page renders without a groff warning, and `make install` installs them
(hulld(8) into man8)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HULL, SRC

HULLD = str(Path(HULL).resolve().parent / "hulld")
MAN = SRC / "docs" / "man"
OPT = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")

# page -> the command whose --help it documents, and options the page may
# name beyond that help (hull's global --root, where state lives).
IMAGE_VERBS = ["pull", "push", "login", "logout", "list", "inspect", "tag", "remove", "prune",
               "import", "load", "save", "bundle", "build", "prepare"]
NETWORK_VERBS = ["create", "list", "inspect", "remove", "prune"]
OCI_VERBS = ["spec", "create", "start", "run", "state", "kill", "delete", "list", "exec", "ps",
             "pause", "resume", "update", "events", "features", "checkpoint", "restore"]
PAGES = {
    # hull vm: its own help and migrate/receive's (one usage for both)
    "hull-vm.1": ([[HULL, "vm", "--help"], [HULL, "vm", "migrate", "--help"]], {"--root"}),
    # hull image: its own help and every command's (and `hull sandbox run
    # --image`, which runs what it stores)
    "hull-image.1": ([[HULL, "image", "--help"]] +
                     [[HULL, "image", v, "--help"] for v in IMAGE_VERBS], {"--image"}),
    "hull-token.1": ([HULL, "token", "--help"], set()),
    "hull-cluster.1": ([HULL, "cluster", "--help"], set()),
    # hull network: each command's help (and the run options that use it)
    "hull-network.1": ([[HULL, "network", "--help"]] +
                       [[HULL, "network", v, "--help"] for v in NETWORK_VERBS],
                       {"--network", "--egress", "--publish"}),
    "hull-sandbox.1": ([HULL, "sandbox", "--help"], set()),
    "hulld.8": ([HULLD, "--help"], set()),
    # hull: the global options and every OCI verb's help; the page also
    # names runc's options hull accepts and ignores, and the sandbox's and
    # tokens' that it sums up.
    "hull.1": ([[HULL, "--help"]] + [[HULL, v, "--help"] for v in OCI_VERBS],
               {"--criu", "--keep", "--no-subreaper", "--cgroup", "--ignore-paused",
                "--cpu-shares", "--json", "--state-dir", "--copy-out-max"}),
}


def page_text(name, examples=True):
    """The page's words with groff's escapes undone (\\- is -); without
    the .nf/.fi example blocks (other programs' options) if asked."""
    t = (MAN / name).read_text()
    if not examples:
        t = re.sub(r"^\.nf$.*?^\.fi$", "", t, flags=re.M | re.S)
    return t.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")


def help_text(cmd):
    if isinstance(cmd[0], list):
        return "".join(help_text(c) for c in cmd)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    return r.stdout


@pytest.mark.parametrize("page", sorted(PAGES))
def test_man_page_options_match_help(page):
    cmd, extra = PAGES[page]
    helped = set(OPT.findall(help_text(cmd)))
    documented = set(OPT.findall(page_text(page, examples=False)))
    assert helped, cmd
    assert helped - documented == set(), f"{page} lacks options that {cmd} lists"
    assert documented - helped - extra == set(), f"{page} names options {cmd} does not know"


def test_hull_vm_page_has_every_subcommand():
    usage = help_text([HULL, "vm", "--help"])
    # a subcommand starts a line indented by two spaces; deeper lines go on
    # describing the one above
    subs = set(re.findall(r"^  (\w+) \[|^  (\w+) ", usage, re.M))
    words = {w for pair in subs for w in pair if w} | set(
        re.findall(r"\| (\w+) ", usage.split("\n\n")[1]))
    words -= {"limits", "environment"}
    text = page_text("hull-vm.1")
    entries = {w for line in re.findall(r"^\.BR? .*$", text, re.M) for w in re.findall(r"\w+", line)}
    assert {"create", "start", "exec", "snapshot", "restore", "run"} <= words
    assert words - entries == set(), f"hull-vm.1 has no entry for {words - entries}"


def test_hull_page_points_to_the_others():
    text = page_text("hull.1")
    for ref in ("hull-vm (1)", "hull-token (1)", "hull-image (1)", "hulld (8)"):
        assert ".BR " + ref.replace(" ", " ") in text, ref
    assert ".SH MICROVMS" in text and ".SH SERVICE TOKENS" in text


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", ["hull.1", "hull-vm.1", "hull-token.1", "hull-image.1",
                                  "hull-network.1", "hull-cluster.1", "hulld.8"])
def test_man_page_renders_cleanly(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", str(MAN / page)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_make_install_installs_every_page(tmp_path):
    # -o all: install what is built, build nothing (the suite runs after make all).
    r = subprocess.run(["make", "-C", str(SRC), "-s", "-o", "all", "install",
                        f"DESTDIR={tmp_path}", "PREFIX=/usr"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    man = tmp_path / "usr" / "share" / "man"
    for page in ("man1/hull.1", "man1/hull-vm.1", "man1/hull-token.1", "man1/hull-image.1",
                 "man8/hulld.8"):
        assert (man / page).read_bytes() == (MAN / Path(page).name).read_bytes(), page
