"""Hyper-parameter search with Optuna, run by Hydra: `python -m resnet_exp.run -m hparams_search=lr_wd`.

- `space.py`: Hydra's sweep syntax (`interval`, `tag(log, ...)`, `choice`, `range`, `a,b`) as
  Optuna distributions, and the overrides of one trial.
- `study.py`: the study in its storage (a sqlite file in the sweep folder by default, any
  SQLAlchemy URL when shared), sampler, pruner, heartbeats, and the files a search leaves.
- `sweeper.py`: the Hydra Sweeper that asks Optuna for trials, launches them as jobs through the
  configured launcher and tells Optuna how each ended. Hydra finds it through the `hydra_plugins`
  package (`hydra_plugins/resnet_exp_search`), the only place Hydra accepts a sweeper from.
- `pruning.py`: inside a job, the link to its trial and the Lightning callback that reports
  `val/acc` per epoch and stops a trial Optuna prunes.

Optuna itself is imported only when a search runs: Hydra imports the plugin on every start.
"""

# Written into the sweep folder by the sweeper (and read by resnet_exp.report).
STUDY_FILE = "study.json"
OPTIMIZATION_RESULTS = "optimization_results.yaml"
# The default storage: a sqlite database in the sweep folder.
STUDY_DB = "optuna.db"
# Set by the sweeper on the trial (user attributes) and read back after the job.
PRUNED_AT_EPOCH = "pruned_at_epoch"
RUN_DIR = "run_dir"
