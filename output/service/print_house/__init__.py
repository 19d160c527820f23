"""Print house: daily print runs (one presorted, stamped PDF and a CSV manifest) and the inserter's results."""

from output.service.print_house._errors import (
    NothingToPrintError,
    PrintResultConflictError,
    PrintResultsError,
    PrintRunConflictError,
    PrintRunNotFoundError,
)
from output.service.print_house.jobs import DailyRun, make_run, run_scheduled
from output.service.print_house.results import ResultReport, import_results
from output.service.print_house.runs import (
    BuiltRun,
    RunPlan,
    build_run,
    check_access,
    create_run,
    get_run,
    list_runs,
    plan_run,
    record_run,
)

__all__ = [
    "BuiltRun", "DailyRun", "NothingToPrintError", "PrintResultConflictError", "PrintResultsError",
    "PrintRunConflictError", "PrintRunNotFoundError", "ResultReport", "RunPlan", "build_run", "check_access",
    "create_run", "get_run", "import_results", "list_runs", "make_run", "plan_run", "record_run", "run_scheduled",
]
