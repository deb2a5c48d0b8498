"""`pull` end to end against a real HTTP server on this machine that speaks the Hub's download protocol."""
from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from model.errors import ModelNotFound


class HubHandler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def _head(self) -> bytes | None:
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        body = self._head()
        if body is not None:
            for i in range(0, len(body), 1 << 20):
                self.wfile.write(body[i:i + (1 << 20)])

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(tiny_folder, monkeypatch):
    """A Hub holding the tiny model's weights as 'glimpse/tiny-test', and an open_clip tag pointing at it."""
    import tiny
    from open_clip import pretrained

    tiny.register()
    weights = (tiny_folder / "open_clip_model.safetensors").read_bytes()
    HubHandler.files = {"/glimpse/tiny-test/resolve/main/open_clip_model.safetensors": weights}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setitem(pretrained._PRETRAINED, tiny.TINY_ARCH, {"test": {
        "hf_hub": "glimpse/tiny-test/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
        "interpolation": "bilinear", "resize_mode": "shortest"}})
    yield len(weights)
    server.shutdown()
    thread.join()


def test_pull_downloads_with_progress_then_exports(hub, tmp_path):
    from model.obtain import pull
    from model.store import ModelStore

    events = []
    model = pull(ModelStore(tmp_path / "models"), "glimpse-tiny/test", progress=lambda *e: events.append(e),
                 quiet=True, cache_dir=str(tmp_path / "hf"))
    downloads = [e for e in events if e[0] == "download"]
    assert downloads and downloads[-1] == ("download", hub, hub), "the callback sees the bytes arrive"
    steps = [e for e in events if e[0] != "download"]  # then the steps, each once, in order, with the share done
    assert steps == [("reading weights", 0, 100), ("exporting the image tower", 10, 100),
                     ("exporting the text tower", 45, 100), ("checking", 75, 100), ("installing", 95, 100),
                     ("installed", 100, 100)]
    assert model.id == "glimpse-tiny-test" and model.manifest["pretrained"] == "test"
    assert model.manifest["lineage"] == {"kind": "pretrained", "tag": "test", "hf_hub": "glimpse/tiny-test/"}
    assert model.manifest["preprocess"]["mean"] == [0.5, 0.5, 0.5], "the tag's preprocessing is kept"
    assert model.manifest["preprocess"]["interpolation"] == "bilinear"
    model.verify()


def test_pull_of_a_tag_the_hub_lacks_says_so(hub, tmp_path):
    from open_clip import pretrained

    from model.errors import ModelError
    from model.obtain import pull
    from model.store import ModelStore

    pretrained._PRETRAINED["glimpse-tiny"]["gone"] = {"hf_hub": "glimpse/missing/"}
    with pytest.raises(ModelError, match="No open_clip weights found in the Hub repository glimpse/missing"):
        pull(ModelStore(tmp_path / "models"), "glimpse-tiny/gone", quiet=True, cache_dir=str(tmp_path / "hf"))
    with pytest.raises(ModelNotFound, match="no downloadable weights"):
        pull(ModelStore(tmp_path / "models"), "glimpse-tiny/never", quiet=True)
