"""The model layer: getting CLIP-style models, exporting them to ONNX, and running them.

Nothing here imports Qt or the rest of Glimpse. torch and open_clip are imported only inside
the modules that obtain and export models (`model.obtain`, `model.export`, `model.openclip`);
the runtime path (`model.runtime`, `model.preprocess`, `model.tokenizer`, `model.store`)
needs only numpy, Pillow, tokenizers and onnxruntime.
"""
