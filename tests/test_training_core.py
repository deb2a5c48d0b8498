"""Training core: the contrastive loss (fixed temperature, multi-positive, bank) and the trimmed text tower."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402

from training.loss import CaptionLoss, contrastive_loss  # noqa: E402
from training.text import batch_length, encode_text_trimmed  # noqa: E402

SCALE = 100.0  # CLIP's trained temperature, exp(4.6052)


def _features(n: int, d: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1),
            F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1))


def test_distinct_captions_give_open_clip_loss():
    image, text = _features(8)
    expected = open_clip.ClipLoss()(image, text, SCALE)
    assert torch.allclose(contrastive_loss(image, text, SCALE), expected, atol=1e-6)
    ids = torch.tensor([5, 3, 9, 0, 1, 2, 7, 4])
    assert torch.allclose(contrastive_loss(image, text, SCALE, caption_ids=ids), expected, atol=1e-6)
    assert torch.allclose(CaptionLoss(SCALE)(image.float(), text.float()), expected.float(), atol=1e-6)


def test_temperature_is_fixed_not_learned(tiny_torch):
    loss = CaptionLoss(tiny_torch.logit_scale.exp().item())
    assert list(loss.parameters()) == []
    assert loss.logit_scale == pytest.approx(tiny_torch.logit_scale.exp().item())


def _pull_between_images(caption_ids):
    """d loss / d eps when image B moves toward image A (B <- B + eps * A), at eps = 0.

    Pairs A and B are orthogonal unit vectors, text == image per pair; positive means the loss
    pushes the two images apart, negative means it draws them together."""
    basis = torch.eye(6, dtype=torch.float64)
    image = basis[:4].clone().requires_grad_(True)
    text = basis[:4].clone()
    contrastive_loss(image, text, 3.0, caption_ids=caption_ids).backward()
    return float(image.grad[1] @ image[0].detach()), float(image.grad[0] @ image[1].detach())


def test_photos_sharing_a_caption_are_not_pushed_apart():
    # Plain InfoNCE (all captions distinct): each of the two photos is the other's negative.
    plain = _pull_between_images(torch.tensor([0, 1, 2, 3]))
    assert plain[0] > 1e-2 and plain[1] > 1e-2
    # Pairs 0 and 1 share a caption: each is a positive for the other's caption, so they are drawn together.
    shared = _pull_between_images(torch.tensor([7, 7, 2, 3]))
    assert shared[0] < -1e-2 and shared[1] < -1e-2


def _text_grads(image, text, ids, bank=None, bank_ids=None):
    text = text.clone().requires_grad_(True)
    contrastive_loss(image, text, 5.0, ids, bank, bank_ids).backward()
    return text.grad


def test_bank_entries_with_the_same_caption_are_not_negatives():
    image, text = _features(4, seed=1)
    ids = torch.tensor([10, 11, 12, 13])
    # Other photos of caption 10, sitting right on its text: the hardest negatives, if they were negatives.
    same = text[0].repeat(3, 1)
    other, _ = _features(2, seed=2)
    bank = torch.cat([same, other])
    bank_ids = torch.tensor([10, 10, 10, 20, 21])
    base = _text_grads(image, text, ids, other, bank_ids[3:])
    with_same = _text_grads(image, text, ids, bank, bank_ids)
    # Caption 10's text is not pushed away from its own photos in the bank...
    assert torch.allclose(with_same[0], base[0], atol=1e-12)
    # ...while for the other captions those photos are negatives, and they move their texts.
    assert (with_same[1] - base[1]).abs().max() > 1e-2
    # Entries of other captions are negatives: they raise the loss.
    assert contrastive_loss(image, text, SCALE, ids, other, bank_ids[3:]) > contrastive_loss(image, text, SCALE, ids) + 1e-6
    # A bank holding only the batch's single caption's photos changes nothing for that batch.
    one = torch.tensor([10, 10, 10, 10])
    assert torch.allclose(contrastive_loss(image, text, SCALE, one, same, bank_ids[:3]),
                          contrastive_loss(image, text, SCALE, one), atol=1e-12)


def test_bank_matches_a_hand_written_text_to_image_loss():
    image, text = _features(3, seed=3)
    bank, _ = _features(2, seed=4)
    ids, bank_ids = torch.tensor([0, 1, 2]), torch.tensor([1, 9])
    got = contrastive_loss(image, text, SCALE, ids, bank, bank_ids)
    rows = []
    for i in range(3):
        cols = [SCALE * text[i] @ image[j] for j in range(3)]
        cols += [SCALE * text[i] @ bank[k] for k in range(2) if bank_ids[k] != ids[i]]
        rows.append(-F.log_softmax(torch.stack(cols), dim=0)[i])
    text_loss = torch.stack(rows).mean()
    image_loss = F.cross_entropy(SCALE * image @ text.T, torch.arange(3))
    assert torch.allclose(got, (text_loss + image_loss) / 2, atol=1e-12)


def test_bank_needs_caption_ids():
    image, text = _features(2)
    with pytest.raises(ValueError, match="caption id"):
        contrastive_loss(image, text, SCALE, bank=image)


TEXTS = ["a", "Mia's lake house", "the Baxter cabin in winter, snow on the roof and a red sled by the door",
         "Oma's kitchen", "our Tuesday hike up the ridge"]


def test_trimmed_text_tower_is_exact(tiny_torch):
    tokens = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    n = batch_length(tokens)
    assert 5 < n < 40  # the longest text sets the length, far below 77
    with torch.no_grad():
        full = tiny_torch.encode_text(tokens, normalize=True)
        trimmed = encode_text_trimmed(tiny_torch, tokens)
        # each text alone runs at its own, shorter length and still gives the same vector
        alone = torch.cat([encode_text_trimmed(tiny_torch, tokens[i:i + 1]) for i in range(len(TEXTS))])
        raw = encode_text_trimmed(tiny_torch, tokens, normalize=False)
    assert torch.allclose(trimmed, full, atol=1e-5)
    assert torch.allclose(alone, full, atol=1e-5)
    assert torch.allclose(raw, tiny_torch.encode_text(tokens).detach(), atol=1e-5)


def test_trimmed_text_tower_gives_the_same_gradients(tiny_torch):
    tokens = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    image = F.normalize(torch.randn(len(TEXTS), 32, generator=torch.Generator().manual_seed(0)), dim=-1)
    grads = []
    for encode in (lambda t: tiny_torch.encode_text(t, normalize=True), lambda t: encode_text_trimmed(tiny_torch, t)):
        tiny_torch.zero_grad()
        contrastive_loss(image, encode(tokens), 10.0).backward()
        grads.append({k: p.grad.clone() for k, p in tiny_torch.named_parameters() if p.grad is not None})
    tiny_torch.zero_grad()
    assert grads[1].keys() == grads[0].keys() and "token_embedding.weight" in grads[1]
    for k in grads[0]:
        assert torch.allclose(grads[1][k], grads[0][k], atol=1e-5), k
    assert grads[1]["text_projection"].abs().sum() > 0


def test_untrimmable_tower_is_refused(tiny_torch):
    class NotClip(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="cannot be trimmed"):
        encode_text_trimmed(NotClip(), torch.zeros(1, 77, dtype=torch.long))


def test_names_users_keep_writing_become_captions_and_relate_their_wordings():
    from training.data import caption_ids_of, related_captions, shared_phrases

    texts = ["Aunt Rosa's garden", "Aunt Rosa's garden in July", "Aunt Rosa's garden, 2019",
             "Grandpa's boat with the dogs", "Grandpa's boat", "Grandpa's boat in July", "a day at the beach"]
    assert shared_phrases(texts) == ["aunt rosa's garden"] * 3 + ["grandpa's boat"] * 3 + [None]
    ids = caption_ids_of(texts + ["aunt ROSA's  garden"])
    assert ids[-1] == ids[0] and len(set(ids[:7].tolist())) == 7
    related = related_captions(texts)
    assert set(related[1].tolist()) == {0, 1, 2}            # one place in other words
    assert 3 not in related[0] and 0 not in related[3]      # "with the dogs" alone relates nothing
    assert related[6].tolist() == [6]


def test_related_captions_are_neither_pulled_nor_pushed():
    """Photo 1 moves so that only its similarity to caption 0 (a related caption) changes: with the pair
    marked related the loss stays exactly the same; without it, the loss changes."""
    image, text = _features(4)
    ids = torch.arange(4)
    related = torch.zeros(4, 4, dtype=torch.bool)
    related[0, 1] = related[1, 0] = True
    others = text[1:].T                                   # [d, 3]: every caption but 0
    u = torch.randn(16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    u = u - others @ torch.linalg.lstsq(others, u).solution  # orthogonal to captions 1..3
    moved = image.clone()
    moved[1] = image[1] + 2.0 * u
    assert abs(float(moved[1] @ text[0] - image[1] @ text[0])) > 0.1
    with_mask = [float(contrastive_loss(x, text, 10.0, ids, related=related)) for x in (image, moved)]
    without = [float(contrastive_loss(x, text, 10.0, ids)) for x in (image, moved)]
    assert with_mask[0] == pytest.approx(with_mask[1], abs=1e-9)
    assert abs(without[0] - without[1]) > 1e-3
