"""Stage 06: the paper's tables and figures, results.json and the run's README, from one run directory. The only
matplotlib user."""
