"""Before a run, check that every free input of the pipeline exists, naming the pipeline that writes it."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl


class MissingUpstreamError(RuntimeError):
    """A pipeline's input dataset does not exist yet; the message names who produces it."""


def describe_pinned(name: str, version: str, catalog) -> str:
    """The line for an input pinned by ``--load-versions`` to a version that does not exist: running
    its pipeline cannot help, so it lists the versions that do exist."""
    from pathlib import PurePosixPath

    try:
        found = sorted({PurePosixPath(p).parent.name for p in catalog.get(name)._get_versions()})
    except Exception:  # not a versioned dataset, or its directory cannot be listed
        found = []
    shown = ", ".join(found[-10:]) + (f" (and {len(found) - 10} older)" if len(found) > 10 else "")
    return (f"  - {name}: the pinned version {version} (--load-versions={name}:{version}) does not exist; "
            f"versions that exist: {shown or 'none'}")


def describe_missing(missing: list[str], pipelines, pinned: dict | None = None, catalog=None) -> str:
    """One line per missing dataset: the registered pipelines that produce it and the command to run,
    or, for one pinned to a version (``pinned``: ``--load-versions``), the versions that exist."""
    lines = []
    for name in missing:
        if name in (pinned or {}):
            lines.append(describe_pinned(name, pinned[name], catalog))
            continue
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
            raise MissingUpstreamError(describe_missing(missing, pipelines, run_params.get("load_versions"), catalog))
