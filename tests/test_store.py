"""A damaged model is reported clearly, and can be removed and obtained again."""
from __future__ import annotations

import pytest

from model.errors import CorruptModel, ImportError_, ModelNotFound
from model.runtime import Encoder


def test_truncated_onnx_file_is_reported_not_crashed(store_copy, tiny_stored):
    path = store_copy.root / tiny_stored.id / "visual.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptModel, match="wrong size"):
        store_copy.get(tiny_stored.id)


def test_onnx_file_damaged_in_place_fails_its_checksum_and_does_not_load(store_copy, tiny_stored):
    path = store_copy.root / tiny_stored.id / "textual.onnx"
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\x00" * 3900  # same size, garbage inside
    path.write_bytes(bytes(data))
    model = store_copy.get(tiny_stored.id)  # cheap checks pass: same size
    with pytest.raises(CorruptModel, match="textual.onnx fails its checksum"):
        model.verify()
    with pytest.raises(CorruptModel, match=r"does not load .*glimpse models remove"):
        Encoder(model).encode_texts(["a cat"])


@pytest.mark.parametrize("content", ["{ not json", "[]", '{"id": "x"}'])
def test_unreadable_manifest_is_reported(store_copy, tiny_stored, content):
    (store_copy.root / tiny_stored.id / "manifest.json").write_text(content)
    with pytest.raises(CorruptModel, match="manifest.json is unreadable"):
        store_copy.get(tiny_stored.id)
    (entry,) = store_copy.list()
    assert isinstance(entry, CorruptModel)


def test_missing_model_names_the_installed_ones(store_copy, tiny_stored):
    with pytest.raises(ModelNotFound, match=tiny_stored.id):
        store_copy.get("nope")
    with pytest.raises(ModelNotFound, match=rf"^No model named '\.\./escape' \(installed: {tiny_stored.id}\)"):
        store_copy.get("../escape")


def test_remove_deletes_only_that_model(store_copy, tiny_stored):
    store_copy.remove(tiny_stored.id)
    assert store_copy.ids() == [] and list(store_copy.root.iterdir()) == []


def test_weights_file_import_needs_architecture(tmp_path, tiny_torch):
    import tiny
    import torch

    from model.obtain import import_path
    from model.store import ModelStore

    tiny.register()
    store = ModelStore(tmp_path / "models")
    weights = tmp_path / "w.pt"
    torch.save(tiny_torch.state_dict(), weights)
    with pytest.raises(ImportError_, match="--arch"):
        import_path(store, weights)
    model = import_path(store, weights, architecture=tiny.TINY_ARCH, name="from-file")
    assert model.id == "from-file" and model.manifest["lineage"]["kind"] == "import"


@pytest.mark.parametrize("form", ["weights file", "open_clip folder"])
def test_pickled_code_in_weights_never_runs(tmp_path, tiny_folder, form):
    """A torch file whose pickle calls a function is refused before the call runs (weights_only loading)."""
    import shutil

    import tiny
    import torch

    from model.obtain import import_path
    from model.store import ModelStore

    tiny.register()
    marker = tmp_path / "code-ran"

    class Payload:  # unpickling it calls open(marker, "w"): the marker file appears if the code runs
        def __reduce__(self):
            return (open, (str(marker), "w"))

    if form == "weights file":
        source = evil = tmp_path / "evil.pt"
        kwargs = {"architecture": tiny.TINY_ARCH, "name": "evil"}
    else:
        source = shutil.copytree(tiny_folder, tmp_path / "evil-clip")
        (source / "open_clip_model.safetensors").unlink()
        evil, kwargs = source / "open_clip_pytorch_model.bin", {}
    torch.save({"state_dict": Payload()}, evil)
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ImportError_) as refused:
        import_path(store, source, **kwargs)
    assert not marker.exists(), "loading the weights ran code from the file"
    assert str(refused.value) == (f"{source} holds Python objects besides weights, which could run code when "
                                  "loaded; Glimpse does not load it. Save the weights as safetensors or a plain "
                                  "state dict.")
    assert store.ids() == []


def test_a_file_identical_to_another_models_is_shared_not_copied(tmp_path, tiny_stored):
    """A text-tower fine-tune exports the same visual.onnx as its base: the store keeps one copy (a hard
    link), and removing either model leaves the other whole."""
    import shutil

    from model.store import ModelStore

    store = ModelStore(tmp_path / "models")
    shutil.copytree(tiny_stored.path, store.root / "base")
    with store.staging() as tmp:
        for f in tiny_stored.path.iterdir():
            if f.name != "manifest.json":
                shutil.copyfile(f, tmp / f.name)
        (tmp / "textual.onnx").write_bytes((tmp / "textual.onnx").read_bytes() + b"\0")  # a different text tower
        manifest = {k: v for k, v in tiny_stored.manifest.items() if k not in ("files", "sizes")}
        tuned = store.install(tmp, dict(manifest, id="tuned"))
    base = store.get("base")
    assert tuned.visual_path.stat().st_ino == base.visual_path.stat().st_ino
    assert tuned.textual_path.stat().st_ino != base.textual_path.stat().st_ino
    store.remove("base")
    tuned.verify()  # still whole


def test_a_fine_tune_never_replaces_a_model_of_its_name(tmp_path, tiny_stored):
    """Two runs that chose the same name: the second is numbered ("number") or refused ("fail"); the
    first model stays as it was."""
    import shutil

    from model.errors import ModelExists
    from model.store import ModelStore

    store = ModelStore(tmp_path / "models")
    shutil.copytree(tiny_stored.path, store.root / "mine")
    before = store.get("mine").manifest

    def staged(tmp):
        for f in tiny_stored.path.iterdir():
            if f.name != "manifest.json":
                shutil.copyfile(f, tmp / f.name)
        return {k: v for k, v in tiny_stored.manifest.items() if k not in ("files", "sizes")} | {"id": "mine"}

    with store.staging() as tmp:
        assert store.install(tmp, staged(tmp), exists="number").id == "mine-2"
    with store.staging() as tmp:
        with pytest.raises(ModelExists, match="'mine' exists already"):
            store.install(tmp, staged(tmp), exists="fail")
    assert store.get("mine").manifest == before and store.get("mine-2").manifest["id"] == "mine-2"
    assert store.ids() == ["mine", "mine-2"]
