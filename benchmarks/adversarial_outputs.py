"""``python -m benchmarks.adversarial_outputs [-k TEXT] [--keep]``: the first adversarial pass over the
output and input rules (575 cases). The pass lives in `benchmarks.adversarial.outputs`, its cases in
the `outputs_*` modules beside it, the runner it shares with `benchmarks.output_safety_cases` in
`benchmarks.adversarial.runner`."""
import sys

from benchmarks.adversarial.outputs import main

if __name__ == "__main__":
    sys.exit(main())
