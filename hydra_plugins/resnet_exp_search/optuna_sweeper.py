"""The Optuna sweeper of resnet_exp (`hydra/sweeper=optuna`), as Hydra finds plugins: a class in the
`hydra_plugins` namespace. The code is `resnet_exp.search.sweeper`; Hydra imports this module on
every start, so it imports no Optuna until a search runs."""

from resnet_exp.search import sweeper


class OptunaSweeper(sweeper.OptunaSearch):
    """See `resnet_exp.search.sweeper.OptunaSearch`."""
