"""vos.editing: the web app's editing session, without the UI (tested without a browser).

The session (objects, annotations, corrections, propagation, saved sessions), gestures made masks
(brush and eraser strokes, a box through GrabCut) and the drawing canvas (HTML, CSS, JavaScript);
vos.app puts them on a page.
"""
