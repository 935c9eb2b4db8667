"""Study tables: read and validate a CSV, and select the counts an analysis uses."""

from bayes_dress.data.selection import (
    ANALYSIS_JOIN,
    AnalysisData,
    OutcomeData,
    check_definitions,
    check_exclusions,
    select_analysis,
    select_outcome,
)
from bayes_dress.data.table import (
    DEFAULT_DEFINITION,
    DEFAULT_OUTCOME,
    MAX_COUNT,
    REQUIRED_COLUMNS,
    Row,
    StudyTable,
    bundled_data_path,
    load_table,
)

__all__ = ["ANALYSIS_JOIN", "DEFAULT_DEFINITION", "DEFAULT_OUTCOME", "MAX_COUNT",
           "REQUIRED_COLUMNS", "AnalysisData", "OutcomeData", "Row", "StudyTable",
           "bundled_data_path", "check_definitions", "check_exclusions", "load_table",
           "select_analysis", "select_outcome"]
