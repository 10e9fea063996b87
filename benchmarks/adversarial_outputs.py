"""``python -m benchmarks.adversarial_outputs [-k TEXT] [--keep]``: the first adversarial pass over the
output and input rules (575 cases: --out/--alpha folders, single files, outputs that are inputs, the
other tools, bad values, special files, the library). Its cases are in the `outputs_*` modules of
`benchmarks.adversarial`; the machinery they share with `benchmarks.output_safety_cases` (the scene,
the shared inputs, the checks) is `benchmarks.adversarial.output_pass`."""
import sys

from benchmarks.adversarial.output_pass import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__.split("\n\n")[0],
                  ("outputs_folders", "outputs_tools", "outputs_values", "outputs_library")))
