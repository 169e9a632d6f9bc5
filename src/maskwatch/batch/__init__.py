"""``maskwatch batch``: video archives and photo sets on Ray, with per-input reports.

``plan`` groups inputs into units and chunks, ``worker`` is the Ray actor's body,
``assemble`` restores frame order, tracks and writes a unit's outputs, and
``run`` schedules chunks on Ray. Ray is imported only when a batch runs.
"""

from maskwatch.batch.run import BatchOptions, BatchReport, UnitReport, run_batch

__all__ = ["BatchOptions", "BatchReport", "UnitReport", "run_batch"]
