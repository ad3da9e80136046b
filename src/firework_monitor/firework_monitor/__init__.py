"""Visual world model and per-task error predictors (failure + OOD) with adaptive thresholds, and the monitor node."""
