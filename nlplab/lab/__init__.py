"""`nlplab lab`: experiments that reproduce the study notes' claims, each as a table, a JSON file and plots.

A lab is a module `nlplab.lab.<name>` defining `LAB = Lab(name, claim, run)`; `run(ctx)` returns a `LabResult`.
`run_lab(name, out, quick=..., seed=...)` writes `out/NAME.md`, `out/NAME.json` and the lab's PNG plots.
"""

from nlplab.lab.base import LABS, Lab, LabContext, LabResult, get_lab, run_lab

__all__ = ["LABS", "Lab", "LabContext", "LabResult", "get_lab", "run_lab"]
