"""vos.editing: the web app's parts, below the page that vos.app builds.

The editing session (objects, annotations, corrections, propagation, saved sessions; a plain class,
tested without a browser) with its files, results and exports; gestures made masks (brush and eraser
strokes, a box through GrabCut); what each event of the page does (the handlers, imported once gradio
is), what the page shows and reads (the views), and the drawing canvas (HTML, CSS, JavaScript).
"""
