"""What the results area says when it has no results: opening, what to do first, or why nothing matched."""
from __future__ import annotations

from app.library.session import SearchRequest
from app.library.status import LibraryStatus


def empty_text(s: LibraryStatus | None, request: SearchRequest | None, busy: bool, error: str | None = None) -> str:
    if s is None:
        return "Opening your library…"
    if error:
        return f"<h3>That search did not work</h3><p>{error}</p>"
    if not s.folders:
        return ("<h3>Add a folder of photos to start</h3><p>Drop a folder here, or open "
                "<b>Library</b> and choose <b>Add folder…</b></p>")
    if not s.has_model:
        return "<h3>Glimpse needs a model</h3><p>Open <b>Settings → Model</b> to download or import one.</p>"
    if s.photos == 0:
        return ("<h3>Indexing your photos…</h3><p>Results appear as soon as the first photos are indexed.</p>"
                if busy else "<h3>No photos found yet</h3><p>Glimpse found no photos in your folders. "
                "Add another folder in <b>Library</b>.</p>")
    if request is not None and request.browsing:
        return "<h3>No photos here</h3><p>No photos match the folder and date filters.</p>"
    if request is None or request.empty:
        return (f"<h3>Describe a photo, or drop one here</h3><p>{s.photos:,} photos are searchable. Try "
                "<i>beach at sunset</i>, or <i>cat + snow - indoor</i>. Paste an image with Ctrl+V.</p>")
    return "<h3>No photos match</h3><p>Try another description, or widen the folder and date filters.</p>"
