"""Before a run, check that every free input of the pipeline exists, naming the pipeline that writes it."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl


class MissingUpstreamError(RuntimeError):
    """A pipeline's input dataset does not exist yet; the message names who produces it."""


def describe_missing(missing: list[str], pipelines) -> str:
    """One line per missing dataset: the registered pipelines that produce it and the command to run."""
    lines = []
    for name in missing:
        producers = [p for p, pipe in pipelines.items()
                     if p not in ("__default__", "cascade") and name in pipe.all_outputs()]
        if producers:
            lines.append(f"  - {name} (produced by pipeline {', '.join(producers)}; "
                         f"run `kedro run --pipelines={producers[0]}`)")
        else:
            lines.append(f"  - {name} (not produced by any pipeline)")
    return "missing upstream datasets for this run:\n" + "\n".join(lines)


class UpstreamCheckHook:
    """Refuses a run whose free inputs are missing, before any node runs.

    ``kedro run --pipelines=sft`` on a fresh clone would otherwise fail deep inside a node; this
    says which dataset is missing and which registered pipeline writes it.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        """Raise :class:`MissingUpstreamError` when an input that no node of the run writes does not exist."""
        from kedro.framework.project import pipelines

        missing = [name for name in sorted(pipeline.inputs())
                   if not name.startswith("params:") and name != "parameters" and not catalog.exists(name)]
        if missing:
            raise MissingUpstreamError(describe_missing(missing, pipelines))
