"""Studies of finite-width networks vs. their linearizations (library side of validation/).

Reproductions of Ortiz-Jiménez, Moosavi-Dezfooli & Frossard (NeurIPS 2021), "What can
linearized neural networks actually say about generalization?", on scikit-learn digits:

* :func:`run_eigenfunctions` — NTK eigenfunction tasks, test accuracy vs eigen-index;
* :func:`run_alignment` — kernel–target alignment of the NTK during training;
* :func:`run_linearization` — network vs linearization at init vs at trained weights.

Command line: ``python -m infntk.studies eigenfunctions|alignment|linearization
--arch mlp|cnn --out DIR [--quick]``.
"""
from infntk.studies.alignment import run_alignment
from infntk.studies.eigenfunctions import eigen_labels, eigenfunction_tasks, run_eigenfunctions
from infntk.studies.linearization import run_linearization

__all__ = ["run_alignment", "run_eigenfunctions", "run_linearization", "eigen_labels",
           "eigenfunction_tasks", "STUDIES"]

STUDIES = {"eigenfunctions": run_eigenfunctions, "alignment": run_alignment,
           "linearization": run_linearization}
