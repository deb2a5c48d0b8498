"""Vectors belong to an image space, not to a model name: re-imports, look-alike names, removal, and
switching models with a shared or a new image tower (search keeps the old space until the new is done)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from app import tasks
from app.library.catalog import vector_schema, vector_table_name
from app.library.query import parse
from conftest import install_copy, make_photos
from model.jobs import Control, Job
from model.runtime import Encoder


def _index(library, tmp_path, n=6):
    root = tmp_path / "photos"
    make_photos(root, n)
    library.folders.add(str(root))
    update = library.update()
    assert update.summary.encoded == n
    return root


def _stored_vector(library, path) -> np.ndarray:
    return library.searcher().vector_of(str(path))


def _encode(model, path) -> np.ndarray:
    return Encoder(model).encode_images([str(path)])[0]


def test_other_weights_imported_under_the_same_name_are_encoded_again(library, tmp_path, tiny_variants):
    root = _index(library, tmp_path)
    photo = sorted(root.iterdir())[0]
    old_space = library.models.active().image_space
    # What `glimpse models import OTHER --name tiny-clip` leaves: the same name, other weights.
    model = install_copy(library, tiny_variants["tiny-other"], name=library.models.active_id)
    assert model.image_space != old_space

    update = library.update()
    assert update.summary.encoded == 6, "the new image tower's vectors are made, not the old ones reused"
    assert np.dot(_stored_vector(library, photo), _encode(model, photo)) > 0.999
    assert list(library.catalog.spaces()) == [model.image_space], "the old space's vectors are dropped"
    hits = library.searcher().search(parse("a photo"), k=6)
    assert len(hits) == 6


def test_names_that_differ_only_in_punctuation_keep_their_own_vectors(library, tmp_path, tiny_stored,
                                                                       tiny_variants):
    spaces = ["my-model", "my.model", "my+model", "my_model", "303239b91bbe41d7"]
    assert len({vector_table_name(s) for s in spaces}) == len(spaces)
    install_copy(library, tiny_stored, "my-model")
    install_copy(library, tiny_variants["tiny-other"], "my_model")
    library.models.use("my-model")
    root = _index(library, tmp_path)
    assert tasks.activate(library, "my_model", Job()) is True  # indexed, then switched
    photo = sorted(root.iterdir())[0]
    assert np.dot(_stored_vector(library, photo), _encode(library.models.active(), photo)) > 0.999


def test_removing_a_model_drops_only_vectors_no_installed_model_uses(library, tmp_path, tiny_variants):
    _index(library, tmp_path)
    space = library.models.active().image_space
    install_copy(library, tiny_variants["tiny-text"])  # same image tower
    tasks.remove_model(library, library.models.active_id)
    assert space in library.catalog.spaces(), "tiny-text still uses these vectors"
    assert library.models.active_id == "tiny-text", "search goes on with the model that can answer"
    tasks.remove_model(library, "tiny-text")
    assert library.catalog.spaces() == {}
    assert library.models.active_id is None


def test_a_model_sharing_the_image_tower_is_active_at_once_and_encodes_nothing(library, tmp_path, tiny_variants):
    root = _index(library, tmp_path)
    text_model = install_copy(library, tiny_variants["tiny-text"])
    before = library.searcher().search(parse("a red boat"), k=6)

    assert tasks.activate(library, "tiny-text", Job()) is True
    assert library.models.active_id == "tiny-text"
    update = library.update()
    assert update.summary.encoded == 0 and update.plan.unchanged == 6
    searcher = library.searcher()
    expected = Encoder(text_model).encode_texts(["a red boat"])[0]
    assert np.allclose(searcher.query_vector(parse("a red boat")), expected, atol=1e-5)
    after = searcher.search(parse("a red boat"), k=6)
    assert {h.path for h in after} == {h.path for h in before} == {str(p) for p in root.iterdir()}
    assert [h.score for h in after] != [h.score for h in before], "the new text tower answers"


def test_a_new_image_tower_is_indexed_in_the_background_then_takes_over(library, tmp_path, tiny_variants):
    root = _index(library, tmp_path)
    old_space = library.models.active().image_space
    other = install_copy(library, tiny_variants["tiny-other"])

    assert library.activate("tiny-other") is False
    assert library.models.active_id == "tiny-clip" and library.models.next().id == "tiny-other"

    control = Control()

    def stop_midway(p):
        if p.stage.startswith("Preparing") and p.encoded >= 2:
            control.cancel()

    update = library.update(progress=stop_midway, control=control, batch_size=2)
    assert update.switched_to is None and update.summary.cancelled is False
    assert library.models.active_id == "tiny-clip", "search keeps the old model while the new space is incomplete"
    assert 0 < len(library.catalog.vector_hashes(other.image_space)) < 6
    hits = library.searcher().search(parse("a photo"), k=10)
    assert len(hits) == 6 and library.searcher().space == old_space

    update = library.update(batch_size=2)
    assert update.switched_to == "tiny-other"
    assert library.models.active_id == "tiny-other" and library.models.next() is None
    assert list(library.catalog.spaces()) == [other.image_space], "the old space is dropped"
    photo = sorted(root.iterdir())[2]
    assert np.dot(_stored_vector(library, photo), _encode(other, photo)) > 0.999
    assert len(library.searcher().search(parse("a photo"), k=10)) == 6


def test_vectors_of_the_old_layout_are_adopted_not_encoded_again(library, tmp_path):
    _index(library, tmp_path)
    model = library.models.active()
    catalog = library.catalog
    hashes, vectors = catalog.vectors(model.image_space)
    # A catalog written before image spaces: one table per model id, the id in its schema metadata.
    legacy = vector_schema(model.image_space, vectors.shape[1]).with_metadata({"model_id": model.id})
    catalog.db.create_table("vectors_" + model.id, data=pa.table(
        {"hash": hashes, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])},
        schema=legacy))
    catalog.drop_space(model.image_space).result()
    assert list(catalog.spaces()) == ["model:" + model.id]

    from app.library.library import Library

    upgraded = Library()  # the first search after an upgrade answers, before any `glimpse index`
    try:
        assert len(upgraded.searcher().search(parse("a photo"), k=10)) == 6
    finally:
        upgraded.close()
    update = library.update()
    assert update.summary.encoded == 0
    assert list(catalog.spaces()) == [model.image_space]
    assert sorted(catalog.vector_hashes(model.image_space).to_pylist()) == sorted(hashes)


def test_the_next_model_removed_while_it_is_prepared_leaves_the_active_one_whole(library, tmp_path, tiny_variants):
    _index(library, tmp_path)
    space = library.models.active().image_space
    install_copy(library, tiny_variants["tiny-other"])
    assert library.activate("tiny-other") is False

    def remove_midway(p):
        if p.stage.startswith("Preparing") and library.models.next() is not None:
            tasks.remove_model(library, "tiny-other")  # as the settings panel's Remove would

    update = library.update(progress=remove_midway, batch_size=2)
    assert update.switched_to is None and library.models.active_id == "tiny-clip"
    assert space in library.catalog.spaces() and len(library.searcher().search(parse("a photo"), k=10)) == 6


def test_no_switch_while_a_folder_is_unplugged(library, tmp_path, tiny_variants):
    _index(library, tmp_path)
    drive = tmp_path / "drive"
    make_photos(drive, 2, start=50)
    library.folders.add(str(drive))
    library.update()
    install_copy(library, tiny_variants["tiny-other"])
    assert library.activate("tiny-other") is False
    drive.rename(tmp_path / "elsewhere")  # unplugged

    update = library.update()
    assert update.switched_to is None and library.models.active_id == "tiny-clip"
    assert len(library.searcher().search(parse("a photo"), k=10)) == 8, "its photos stay findable"

    (tmp_path / "elsewhere").rename(drive)  # back
    assert library.update().switched_to == "tiny-other"
    assert len(library.searcher().search(parse("a photo"), k=10)) == 8


def test_choosing_a_model_after_removing_the_active_one_makes_its_vectors(library, tmp_path, tiny_variants):
    _index(library, tmp_path)
    other = install_copy(library, tiny_variants["tiny-other"])
    assert tasks.remove_model(library, library.models.active_id) == ("tiny-other", False)
    assert library.models.active_id == "tiny-other", "search goes on with the model that is left"

    assert tasks.activate(library, "tiny-other", Job()) is True
    assert library.space_complete(other.image_space)
    assert len(library.searcher().search(parse("a photo"), k=10)) == 6
