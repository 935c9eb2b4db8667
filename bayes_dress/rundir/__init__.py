"""The run directory: its layout, the one writer and the one reader of saved runs and
sweeps (one error type, :class:`~bayes_dress.errors.RunDirError`, for anything unreadable)."""

from bayes_dress.rundir.atomic import atomic_directory, atomic_write_text, check_destination
from bayes_dress.rundir.layout import FORMAT_VERSION, safe_name
from bayes_dress.rundir.read import SavedAnalysis, SavedRun, SavedSweep, load_run, load_sweep
from bayes_dress.rundir.write import RunWriter, default_run_dir

__all__ = ["FORMAT_VERSION", "RunWriter", "SavedAnalysis", "SavedRun", "SavedSweep",
           "atomic_directory", "atomic_write_text", "check_destination", "default_run_dir",
           "load_run", "load_sweep", "safe_name"]
