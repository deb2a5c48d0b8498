"""Text tokenisation without torch, with the `tokenizers` library and a `tokenizer.json` in the model folder.

Two kinds, as open_clip has them:
- `clip-bpe`: open_clip's SimpleTokenizer (CLIP's byte-level BPE). Its vocabulary and merges are
  written to a `tokenizer.json` at export (`build_clip_bpe`), and the cleaning, start/end tokens,
  truncation and padding are done here exactly as open_clip does them.
- `hf`: a Hugging Face tokenizer (e.g. XLM-RoBERTa), saved as its own `tokenizer.json`, padded
  and truncated to the context length as open_clip's HFTokenizer asks transformers to.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

# open_clip's SimpleTokenizer pattern, less its special tokens (see `_clean`).
CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _basic_clean(text: str) -> str:
    import ftfy

    text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()


def _clean(text: str, how: str) -> str:
    text = " ".join(_basic_clean(text).split())
    return text.lower() if how == "lower" else text


class Tokenizer:
    def __init__(self, path: str | Path, spec: dict):
        from tokenizers import Tokenizer as HFTokenizer

        self.kind = spec["kind"]
        self.context_length = int(spec["context_length"])
        self.clean = spec.get("clean", "lower" if self.kind == "clip-bpe" else "whitespace")
        self._tok = HFTokenizer.from_file(str(path))
        if self.kind == "clip-bpe":
            self.sot, self.eot = int(spec["sot_id"]), int(spec["eot_id"])
            self._tok.no_truncation()
            self._tok.no_padding()
        elif self.kind == "hf":
            self._tok.enable_truncation(max_length=self.context_length)
            self._tok.enable_padding(length=self.context_length, pad_id=int(spec["pad_id"]),
                                     pad_token=spec.get("pad_token", "<pad>"))
        else:
            raise ValueError(f"unknown tokenizer kind {self.kind!r}")

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        """Token ids, int64, shape (len(texts), context_length)."""
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [_clean(t, self.clean) for t in texts]
        out = np.zeros((len(cleaned), self.context_length), dtype=np.int64)
        if not cleaned:
            return out
        if self.kind == "hf":
            for i, enc in enumerate(self._tok.encode_batch(cleaned)):
                out[i] = enc.ids
            return out
        for i, enc in enumerate(self._tok.encode_batch(cleaned, add_special_tokens=False)):
            ids = [self.sot, *enc.ids, self.eot][: self.context_length]
            ids[-1] = self.eot
            out[i, : len(ids)] = ids
        return out


def trim_padding(tokens: np.ndarray) -> np.ndarray:
    """Cut the columns after the last end-of-text token of the batch (CLIP's ids: the end is the max)."""
    if tokens.size == 0:
        return tokens
    return tokens[:, : int(tokens.argmax(axis=1).max()) + 1]


def build_clip_bpe(vocab: dict[str, int], merges: Sequence[tuple[str, str]], path: str | Path) -> None:
    """Write open_clip's BPE (its `encoder` and ranked merges) as a `tokenizers` tokenizer.json."""
    from tokenizers import Regex, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

    tok = HFTokenizer(models.BPE(vocab=dict(vocab), merges=list(merges), continuing_subword_prefix="",
                                 end_of_word_suffix="</w>", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))
