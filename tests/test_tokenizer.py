"""The torch-free tokenizer gives exactly open_clip's tokens."""
from __future__ import annotations

import numpy as np
import pytest

from model.tokenizer import Tokenizer

TEXTS = [
    "a photo of a cat", "Grandma's cabin in the SNOW!!!", "  many   spaces\tand\nnewlines ", "",
    "日本の桜 🌸 café naïve", "numbers 12345 and 3.14", "it's we're they've I'm you'll he'd",
    "&amp; html &lt;b&gt; entities", "word " * 100, "don't-stop hyphen_under/slash", "Ünïcödé ÀÉÎÕÜ ß ﬁ",
    "x" * 300, "Ã©tÃ© mojibake", "emoji 👨‍👩‍👧 family", "ALL CAPS SHOUTING", "tab\tseparated\tvalues",
]


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory):
    from open_clip.tokenizer import SimpleTokenizer

    from model.tokenizer import build_clip_bpe

    st = SimpleTokenizer()
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    build_clip_bpe(st.encoder, sorted(st.bpe_ranks, key=st.bpe_ranks.get), path)
    return Tokenizer(path, {"kind": "clip-bpe", "context_length": 77, "sot_id": st.sot_token_id,
                            "eot_id": st.eot_token_id})


def test_clip_bpe_matches_open_clip(clip_tokenizer):
    import open_clip

    expected = open_clip.tokenize(TEXTS).numpy()
    got = clip_tokenizer(TEXTS)
    assert got.dtype == np.int64 and got.shape == (len(TEXTS), 77)
    for text, e, g in zip(TEXTS, expected, got):
        assert (e == g).all(), text


def test_long_text_is_cut_with_end_token_last(clip_tokenizer):
    ids = clip_tokenizer(["photo " * 200])[0]
    assert ids[0] == clip_tokenizer.sot and ids[-1] == clip_tokenizer.eot and (ids != 0).all()


def test_hugging_face_kind_pads_and_truncates(tmp_path):
    from tokenizers import Tokenizer as HF, models, pre_tokenizers

    vocab = {"<pad>": 1, "<unk>": 0, "hello": 5, "world": 6}
    tok = HF(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    t = Tokenizer(tmp_path / "tokenizer.json", {"kind": "hf", "context_length": 4, "pad_id": 1})
    out = t(["Hello  world", "hello hello hello hello hello", "world"])
    assert out.tolist() == [[0, 6, 1, 1], [5, 5, 5, 5], [6, 1, 1, 1]]  # case kept: 'Hello' is unknown
