"""Adversarial passes, written without the tests, as a careless or hostile user would try the project.

* runner.py: what the two passes over the output and input rules share (calling a tool in process or
  as a subprocess, folder snapshots, what a clean refusal looks like, the per-category table).
* outputs.py and outputs_*.py: the first pass (``python -m benchmarks.adversarial_outputs``).
* safety.py and safety_*.py: the second pass (``python -m benchmarks.output_safety_cases``).
* editor.py and editor_*.py: the app's gestures and editing session (``python -m benchmarks.adversarial_editor``).
"""
