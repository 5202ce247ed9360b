"""Shared helpers for the reader tests: where the binaries are, and a copy
of the example project to build in."""

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WH = pathlib.Path(os.environ.get("WH_BIN", ROOT / "target" / "debug" / "wh"))
GOLDEN_RAW = ROOT / "tests" / "fixtures" / "golden" / "raw"


def copy_example(dest):
    """Copies the example project's files (no data, no warehouse) to dest."""
    for item in ["wh_project.yml", "sources.yml"]:
        shutil.copy(ROOT / item, dest / item)
    for item in ["models", "macros", "snapshots", "data/cdp"]:
        shutil.copytree(ROOT / item, dest / item)
    return dest


@pytest.fixture(scope="session")
def s3():
    """One S3 API server on loopback for the whole session (moto keeps its
    objects in this process; see s3server.py)."""
    from s3server import S3Server

    server = S3Server().start()
    yield server
    server.stop()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()
