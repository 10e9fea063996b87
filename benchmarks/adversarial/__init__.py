"""Adversarial passes, written without the tests, as a careless or hostile user would try the project.

* runner.py: what every pass shares (folder snapshots, calling a tool in process or as a subprocess or
  the library, the refusal and library-error checks, the per-category table).
* output_pass.py: the one machinery of the two passes over the output and input rules (a case's folder
  and scene, the inputs every case shares, the case API, the judge).
* outputs_*.py: the first pass's cases (``python -m benchmarks.adversarial_outputs``).
* safety_*.py: the second pass's cases (``python -m benchmarks.output_safety_cases``).
* editor.py and editor_*.py: the app's gestures and editing session (``python -m benchmarks.adversarial_editor``).
"""
