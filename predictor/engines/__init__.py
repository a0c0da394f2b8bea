"""Execution engines for the per-chain commands (`label`, `predict`, `prune`).

`jobs` holds the per-chain work (one class per command: reader, output, records) that both engines
call; `local` is the one local loop (and `run_job`, the commands' one call), `ray_data` runs the same
jobs on a Ray cluster (extra `predictor[ray]`); `chain_io` holds the readers, skips and resumable
outputs both use, `cli_args` the options that name the engine, the LM and the predictor.
"""
