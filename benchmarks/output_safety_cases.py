"""``python -m benchmarks.output_safety_cases [-k TEXT] [--keep]``: the second adversarial pass over the
output and input rules (365 cases: out-folder, single-file, out-is-input, other-tools, bad-values,
special-files, library). Its cases are in the `safety_*` modules of `benchmarks.adversarial`, each
starting from its own copy of the full demo clip; the machinery they share with
`benchmarks.adversarial_outputs` (the scene, the shared inputs, the checks) is
`benchmarks.adversarial.output_pass`."""
import sys

from benchmarks.adversarial.output_pass import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__.split("\n\n")[0],
                  ("safety_folders", "safety_files", "safety_tools", "safety_library")))
