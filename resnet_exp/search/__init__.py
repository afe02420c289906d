"""Hyper-parameter search with Optuna, run by Hydra (`-m hparams_search=lr_wd`); Optuna is imported only when a
search runs. The sweeper is registered for Hydra in `hydra_plugins/resnet_exp_search`."""

STUDY_FILE = "study.json"  # in the sweep folder, read by resnet_exp.report
OPTIMIZATION_RESULTS = "optimization_results.yaml"
STUDY_DB = "optuna.db"  # the default storage, in the sweep folder
# User attributes the sweeper and the job set on a trial.
PRUNED_AT_EPOCH = "pruned_at_epoch"
RUN_DIR = "run_dir"
