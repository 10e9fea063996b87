"""``python -m benchmarks.output_safety_cases [-k TEXT] [--keep]``: the second adversarial pass over the
output and input rules (366 cases). The pass lives in `benchmarks.adversarial.safety`, its cases in the
`safety_*` modules beside it, the runner it shares with `benchmarks.adversarial_outputs` in
`benchmarks.adversarial.runner`."""
import sys

from benchmarks.adversarial.safety import main

if __name__ == "__main__":
    sys.exit(main())
