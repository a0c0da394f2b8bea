"""Execution engines for the per-chain commands (`label`, `predict`, `prune`).

`jobs` holds the per-chain work (one class per command) that both engines call; the local engine is
the loop in each command module, `ray_data` runs the same jobs on a Ray cluster (extra `predictor[ray]`).
"""
