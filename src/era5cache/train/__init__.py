"""Stage 5, train: the RATransformer on the cache, with Lightning.

:mod:`.model` (the network, pure PyTorch), :mod:`.datamodule` (resident or DataLoader
windows), :mod:`.module` (steps, optimiser, skill), :mod:`.run` (the Trainer and the
summary), :mod:`.skill` (latitude-weighted RMSE), :mod:`.monitor` (throughput and waiting
for data), :mod:`.plots` (loss curves, a prediction map).
"""
