"""vos.app without a browser: what it says at start, the log filter, the page's reports it reads."""
import logging
import sys

import pytest

from vos.app import _QuietDisconnects, _playable_names, build_parser, make_editor
from vos.editor import EditorError


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


def test_a_bad_root_is_one_line_and_exit_code_2(tmp_path, capsys):
    from vos.app import main

    assert main(["--root", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --root {tmp_path / 'missing'}: not a folder"


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
    assert _playable_names('["vp9", "h264", "mpeg4", 3]') == ["vp9", "h264"]
    assert _playable_names("{}") == [] and _playable_names("") == []
    with pytest.raises(EditorError, match="unreadable"):
        _playable_names("[[[" * 2)
