"""The `glimpse` command loads only what a command needs (no timing: which modules a fresh process imported),
and a closed pipe after `search` ends quietly."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

# Runs one command in a fresh process and prints, last, the modules it imported.
_PROBE = """
import io, json, sys, contextlib
from app.main import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""
NEVER = ("torch", "open_clip", "training", "PySide6", "lance_namespace_urllib3_client.api")


def _imported(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))



def test_status_and_search_import_only_what_they_need(indexed_by_cli):

    version = _imported("--version")
    assert not version & {"lancedb", "pyarrow", "numpy", "app.library.library", "app.tasks"}, version

    status = _imported("status")
    assert "lancedb" in status  # it did read the catalog
    unneeded = {"onnxruntime", "tokenizers", "ftfy", "app.tasks", *NEVER} & status
    assert not unneeded, f"`glimpse status` imported {sorted(unneeded)}"

    search = _imported("search", "a dog")
    assert {"lancedb", "onnxruntime", "tokenizers"} <= search  # it did encode the text and search
    unneeded = {"app.tasks", *NEVER} & search
    assert not unneeded, f"`glimpse search` imported {sorted(unneeded)}"


def test_a_pipe_closed_by_the_reader_leaves_stderr_empty(indexed_by_cli):
    for extra in ([], ["--json"]):
        # The reader is gone before the results come.
        p = subprocess.Popen([sys.executable, "-m", "app", "search", "cat", "-k", "500", *extra], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.close()
        err = p.stderr.read()
        assert p.wait(timeout=120) == 1 and err == "", err
        # A real `| head -1`.
        r = subprocess.run(f"'{sys.executable}' -m app search cat -k 500 {' '.join(extra)} | head -1", shell=True,
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stderr == "" and len(r.stdout.splitlines()) == 1, r.stderr


def test_lancedb_works_and_its_rest_client_loads_when_asked():
    code = """
import sys, types
from app.library.lance import import_lancedb
import_lancedb()
assert "lance_namespace_urllib3_client.api" not in sys.modules
from lance_namespace_urllib3_client import ApiClient, __version__
import lance_namespace_urllib3_client as client
assert type(client) is types.ModuleType and client.ApiClient is ApiClient and client.TableApi and __version__
import lancedb, tempfile
db = lancedb.connect(tempfile.mkdtemp())
db.create_table("t", data=[{"x": 1}, {"x": 2}])
assert db.open_table("t").count_rows() == 2
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
