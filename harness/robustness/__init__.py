"""How a fitted fold model degrades when its test rows move: random noise, and worst-case attacks.

- `noise.py`: the `noise` attack, seeded random perturbations of every test row;
- `box.py`: the L∞ budget of a level (level × training std per numeric column, inside the
  training range; categorical and missing values fixed);
- `surface.py`: the per-row objective attacks minimise and, for the MLP and linear models,
  its gradient through the fold's preprocessing;
- `attacks.py`: `pgd` and `blackbox` (bounded searches inside the box);
- `fold.py`: one fold's attacks within its budget, and what they spent.

A leaf: numpy, pandas and scikit-learn (torch only for an MLP without `loss_gradient`);
the engine hands it the fitted model and a scoring function.
"""

from harness.robustness.attacks import ATTACKS
from harness.robustness.fold import attack_fold, attack_rows
from harness.robustness.noise import noise_levels_default, perturb

__all__ = ["ATTACKS", "attack_fold", "attack_rows", "noise_levels_default", "perturb"]
