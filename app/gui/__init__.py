"""The desktop app (PySide6). The only package that imports Qt; it talks to `app.library` only through
`backend.Backend`, off the GUI thread. Nothing imported at start-up pulls in torch, lancedb or onnxruntime.
"""
