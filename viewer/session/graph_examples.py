"""Reference examples of a graph node, as session state (the work is in :mod:`graph_reference`).

The reference set is a folder chosen with File → Set reference cases… (None: the bundled
demo cases). Asking for a node's examples submits one job on the session's worker; the
examples come back with the voxel of their own scan where the node's relevance peaks,
and :meth:`open_reference_example` opens that case there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from viewer.session.graph_reference import PreparedCases, list_cases, run_examples
from viewer.session.graph_requests import ExamplesRequest, ExamplesResult, ReferenceExample, parse_node

EXAMPLES_SLOT = ("graph", "examples")


def target_key(target: Any) -> Any:
    """A graph's resolved target as a hashable key the examples can use: the class (or the
    contrast); a region target becomes None, each case's own predicted class."""
    kind = getattr(target, "kind", None)
    if kind == "class":
        return int(target.index)
    if kind == "contrast":
        return (int(target.index), int(target.other))
    return None


class GraphExamplesMixin:
    def _init_examples(self) -> None:
        self.reference_folder: str | None = None
        self.examples_cache_dir: str | None = None  # None: viewer.explain.graph's default cache folder
        self._examples_node: str | None = None
        self._examples_request: ExamplesRequest | None = None
        self._examples_result: ExamplesResult | None = None
        self.examples_error: str | None = None
        self._prepared_cases = PreparedCases()

    @property
    def examples_node(self) -> str | None:
        return self._examples_node

    def examples_result(self) -> ExamplesResult | None:
        with self._lock:
            return self._examples_result

    def examples_busy(self) -> bool:
        return self._runner.is_busy(EXAMPLES_SLOT)

    def set_reference_folder(self, folder: str | os.PathLike | None) -> bool:
        """Use the scans in ``folder`` as reference cases (None: the demo cases); False (and
        an error report) when the folder holds no scans."""
        path = None if folder is None else str(Path(folder).absolute())
        try:
            list_cases(path)
        except (OSError, ValueError) as exc:
            self._report("Cannot use these reference cases", str(exc))
            return False
        if path != self.reference_folder:
            self.reference_folder = path
            self._forget_examples_result()
            self.graph_changed.emit("examples")
            self._submit_examples()
        return True

    def request_examples(self, nid: str | None) -> None:
        """Find the reference regions where node ``nid`` carries most relevance (None: stop)."""
        if nid is not None:
            parse_node(nid)
        if nid == self._examples_node and (self._examples_result is not None or self.examples_busy()):
            return
        self._examples_node = nid
        self._forget_examples_result()
        self.graph_changed.emit("examples")
        self._submit_examples()

    def open_reference_example(self, example: ReferenceExample) -> bool:
        """Open the example's case with the crosshair on the example's peak."""
        with self.batch():
            ok = self.open_scan(example.path)
            if ok:
                self.set_cursor(example.scan_ijk)
        return ok

    def _forget_examples_result(self) -> None:
        self._runner.drop(EXAMPLES_SLOT)
        with self._lock:
            self._examples_request, self._examples_result, self.examples_error = None, None, None

    def _make_examples_request(self) -> ExamplesRequest | None:
        result, ctx, nid = self.graph(), self._ctx, self._examples_node
        if result is None or ctx is None or nid is None or nid not in result.maps:
            return None
        layer, channel = parse_node(nid)
        preset, params = self.graph_lrp()
        from viewer.session.requests import freeze

        return ExamplesRequest(ctx.model_token, tuple(list_cases(self.reference_folder)), layer, channel,
                               dict(result.graph.channel_dims).get(layer), preset, freeze(params),
                               target_key(result.graph.target))

    def _submit_examples(self) -> None:
        if self._closed or self._defer:
            return
        try:
            req = self._make_examples_request()
        except (OSError, ValueError) as exc:  # the folder went away
            self.examples_error = str(exc)
            self.graph_changed.emit("examples")
            return
        if req is None:
            return
        with self._lock:
            if req == self._examples_request and (self._examples_result is not None or self.examples_busy()):
                return
            self._examples_request, self._examples_result, self.examples_error = req, None, None
        model, cache_dir, prepared = self._ctx.model, self.examples_cache_dir, self._prepared_cases

        def job(progress: Any) -> ExamplesResult:
            from viewer.explain.graph.conditional import span

            cases, skipped = prepared.get(model, req.model_token, req.cases, span(progress, 0.0, 0.3))
            return run_examples(model.module, req, cases, skipped, span(progress, 0.3, 1.0), cache_dir)

        key = ("examples", req)
        if self._runner.cached(key) is None:
            self.graph_busy.emit("examples", True)
        self._runner.submit(EXAMPLES_SLOT, key, job)
