"""vos.app without a browser: what it says at start, the log filter, the page's reports it reads."""
import logging
import sys

import pytest

from vos.app import _QuietDisconnects, build_parser, make_editor
from vos.editing.app_views import playable_names
from seggpt.errors import InputError


def test_the_app_says_which_weights_it_runs_and_why(tmp_path, caplog, tiny_weights):
    """The app defaults to the packaged small model (it starts offline) and says so at start, with how to run
    the official one; weights given are named as given."""
    with caplog.at_level(logging.INFO, logger="vos.app"):
        make_editor(build_parser().parse_args(["--root", str(tmp_path), "--device", "cpu"]))
        make_editor(build_parser().parse_args(["--root", str(tmp_path), "--device", "cpu", "--weights", tiny_weights]))
    lines = [r.getMessage() for r in caplog.records if r.name == "vos.app"]
    assert lines[0].startswith("weights small (the default of the app: the packaged small model, so the app starts "
                               "offline") and "--weights BAAI/seggpt-vit-large for the official model" in lines[0]
    assert lines[1].startswith(f"weights {tiny_weights} (--weights) on cpu")


def test_a_bad_root_or_port_is_one_line_and_exit_code_2(tmp_path, refused):
    from vos.app import main

    assert refused(main, ["--root", str(tmp_path / "missing")]) == f"error: --root {tmp_path / 'missing'}: not a folder"
    # the server failed with a traceback
    assert refused(main, ["--root", str(tmp_path), "--port", "99999"]) == "error: --port: a port is 0..65535, got 99999"


def test_a_dropped_connection_is_one_line_and_other_errors_keep_their_traceback():
    """uvicorn's "Exception in ASGI application" for h11's LocalProtocolError (a browser that closed a
    connection mid-response) becomes one INFO line; any other exception is left as it is."""
    h11 = pytest.importorskip("h11")

    def record(exc):
        try:
            raise exc
        except BaseException:
            return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application",
                                     None, sys.exc_info())

    quiet = _QuietDisconnects()
    dropped = record(h11.LocalProtocolError("Too little data for declared Content-Length"))
    assert quiet.filter(dropped) and dropped.exc_info is None and dropped.levelno == logging.INFO
    assert "harmless" in dropped.getMessage() and "Content-Length" in dropped.getMessage()
    if sys.version_info < (3, 11):
        return  # no ExceptionGroup (anyio wraps the error in one)
    wrapped = record(ExceptionGroup("unhandled errors in a TaskGroup",
                                    [h11.LocalProtocolError("Too little data for declared Content-Length")]))
    assert quiet.filter(wrapped) and wrapped.exc_info is None
    other = record(ValueError("a real bug"))
    assert quiet.filter(other) and other.exc_info is not None and other.levelno == logging.ERROR


def test_the_playback_reads_only_known_encodings_from_the_page():
    assert playable_names('["vp9", "h264", "mpeg4", 3]') == ["vp9", "h264"]
    assert playable_names("{}") == [] and playable_names("") == []
    with pytest.raises(InputError, match="unreadable"):
        playable_names("[[[" * 2)


@pytest.fixture
def app_and_editor(tiny_weights, tmp_path):
    pytest.importorskip("gradio")
    from seggpt.io import write_mp4
    from vos import VideoSegmenter
    from vos.app import build_app
    from vos.editing.editor import Editor
    from vos.data.synthetic import make_clip

    frames, _ = make_clip(5, 12, size=(32, 48), num_objects=1)
    write_mp4(tmp_path / "c.mp4", frames, fps=8)
    editor = Editor(VideoSegmenter(tiny_weights, config={"memory": 1}, device="cpu"), tmp_path)
    return build_app(editor), editor


def _call(app, fn, inputs, data=None):
    import asyncio

    from gradio.helpers import EventData

    return asyncio.run(app.process_api(block_fn=fn, inputs=inputs, state=None, event_data=EventData(None, data or {})))


@pytest.mark.parametrize("opened", [False, True])
def test_every_handler_answers_with_one_value_per_output_on_empty_input(app_and_editor, opened):
    """Every event of the page, called as a page with nothing chosen would (each input as the page starts),
    before and after a video is open: no exception (a handler's error path once returned one value too few, and Gradio failed
    with a traceback instead of the status line) and exactly one value per output."""
    app, editor = app_and_editor
    if opened:
        editor.open("c.mp4")
    checked = 0
    for fn in app.fns.values():
        if fn.fn is None:
            continue
        out = _call(app, fn, [getattr(block, "value", None) for block in fn.inputs])  # as the page starts
        assert len(out["data"]) == len(fn.outputs), (fn.name, len(out["data"]), len(fn.outputs))
        checked += 1
    assert checked >= 20


def test_a_timeline_click_moves_the_slider_there(app_and_editor):
    app, editor = app_and_editor
    editor.open("c.mp4")
    jump = next(fn for fn in app.fns.values() if fn.name == "on_jump")
    out = _call(app, jump, [None, []], {"frame": 7})
    assert out["data"][1]["value"] == 7 and not str(out["data"][0]).startswith("error"), out["data"][:2]
    out = _call(app, jump, [None, []], {"frame": 99})
    assert out["data"][0].startswith("error: frame")  # a frame the video does not have: one line


def test_the_names_that_moved_to_the_views_still_import_with_a_warning():
    import vos.app
    from vos.editing.app_views import mask_key

    with pytest.warns(DeprecationWarning, match="vos.app.mask_key moved to vos.editing.app_views.mask_key"):
        assert vos.app.mask_key is mask_key
