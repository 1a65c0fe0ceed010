"""A/B and champion–challenger analysis: `harness ab plan | test | paired`.

- `power.py`: the sample size per arm for a planned experiment (statsmodels' power classes).
- `data.py`: reading a log or a labelled file, and every bad-input check (exit 2, one line).
- `experiment.py`: a two-arm experiment from logged outcomes: the two-proportion z-test or
  Welch's t-test, the difference and relative lift with CIs, the power, and the decision.
- `sequential.py`: the always-valid mSPRT p-value and confidence sequence (peeking is safe).
- `paired.py`: two exported models on the same newly labelled rows (McNemar, paired bootstrap).
- `render.py`: only formats: ab.json, ab.md and the terminal lines.

Exit codes of the commands: 0 no significant harm to the control's metric, 1 the
challenger (treatment, or model B) is significantly worse, 2 bad input.
"""

from __future__ import annotations
