"""Errors raised for bad input, before anything trains."""


class InvalidDataError(ValueError):
    """Input data that cannot be used; the message names the file, class or field at fault."""


class CostLimitError(ValueError):
    """The estimated cost of a run exceeds its limit (runtime.time_budget_minutes); the message names what to cut."""
