"""Reports of runs and sweeps: `python -m resnet_exp.report <sweep dir | run dir>` (README, "Sweeps and
recipes"). A sweep folder gets the files below, rebuilt after every job of a multirun by
`app.hydra_callbacks.SweepReport`; a run folder gets curves.png."""

SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
GROUPS_CSV, COMPARISONS_CSV = "groups.csv", "comparisons.csv"
ACCURACY_PNG, STEP_TIME_PNG = "accuracy_vs_depth.png", "step_time_vs_depth.png"
TIME_TO_ACCURACY_PNG = "time_to_accuracy.png"
CURVES_PNG = "curves.png"  # in a run folder
# Written by the sweep callback into a job folder when the job raised (the folder may hold only it).
JOB_STATUS_FILE = "job_status.json"
