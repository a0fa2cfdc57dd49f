"""The torch side of the predictors: batched graph tensors (``batch``), the one
training loop with its losses (``train``) and the networks (``flowerformer``,
``gcn``, ``mlp``). Imported lazily by the registered predictors, so that
discovering predictors does not import torch."""
