"""Contrastive fine-tuning of the user's model on captioned albums (torch, no Qt).

Built in the fine-tuning issue; it imports `model` only, as open_clip_train imports open_clip.
"""
