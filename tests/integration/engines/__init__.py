"""Helpers for the tests in which real container engines (podman, containerd)
drive the OCI runtime under test: busybox images made locally, engines
confined to test directories, and checks of the host's kernel state."""
