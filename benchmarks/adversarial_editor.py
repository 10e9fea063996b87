"""``python -m benchmarks.adversarial_editor [-k TEXT] [--browser]``: the adversarial pass over the app's
gestures (vos.editing.drawing) and editing session (vos.editing.editor.Editor): 55 cases, ``--browser`` adds 32 checks
in headless Chromium; exits 1 on any failure. The pass lives in `benchmarks.adversarial.editor`, its
cases in the `editor_*` modules beside it."""
import sys

from benchmarks.adversarial.editor import main

if __name__ == "__main__":
    sys.exit(main())
