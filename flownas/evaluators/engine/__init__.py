"""The torch side of the evaluators: data batches, training loop with
checkpoints, zero-cost proxies, FLOPs, params and latency.

The evaluator registry imports the modules of ``flownas.evaluators`` (to find
registrations) but not this package's modules, so torch is imported only when
an evaluation actually runs.
"""
