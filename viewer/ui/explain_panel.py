"""The "Explain" panel: which model, method, LRP preset and parameters, target, device;
progress; the model's prediction (with input warnings) and LRP's conservation figures.

Every control writes straight into the session, which re-submits the explanation in the
background (a quick Grad-CAM preview first when the method is LRP); this panel only ever
reads state back. Numeric parameters are debounced so typing "0.25" submits once.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets
from pyqtgraph.parametertree import Parameter

from viewer.ui.param_specs import param_value, parameter_tree, spec_to_param, specs_by_name
from viewer.ui.prediction_box import PredictionBox


def _available_devices() -> list[str]:
    from viewer.session.requests import available_devices

    return available_devices()


class ExplainPanel(QtWidgets.QWidget):
    """Controls of the main explanation (panel 0 of the session)."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = 0
        self._structure: tuple | None = None
        self._specs: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}
        self._updating = False
        self._debounce = QtCore.QTimer(self, singleShot=True, interval=250)
        self._debounce.timeout.connect(self._flush_params)

        self.root = Parameter.create(name="explain", type="group", children=[
            {"name": "method", "title": "Method", "type": "list", "limits": {"LRP": "lrp"}, "value": "lrp"},
            {"name": "preset", "title": "LRP preset", "type": "list", "limits": {}, "value": None},
            {"name": "params", "title": "Parameters", "type": "group", "children": []},
            {"name": "target", "title": "Target", "type": "list", "limits": {"Predicted class": "pred"},
             "value": "pred"},
            {"name": "contrast", "title": "Contrast with", "type": "list", "limits": {"none": "none"},
             "value": "none"},
            {"name": "device", "title": "Device", "type": "list", "limits": ["cpu"], "value": "cpu"},
            {"name": "precision", "title": "Precision", "type": "list",
             "limits": ["float32", "bfloat16", "float16"], "value": "float32"},
        ])
        self.tree = parameter_tree(self.root)
        self.tree.setMinimumHeight(190)
        self.root.sigTreeStateChanged.connect(self._on_tree)

        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedHeight(14)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running explanation (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.session.cancel(self.panel))
        self.state_label = QtWidgets.QLabel("No model")
        self.state_label.setWordWrap(True)

        self.prediction_box = PredictionBox()
        self.prediction_table = self.prediction_box.table
        self.result_heading = QtWidgets.QLabel("<b>Conservation (LRP)</b>")
        self.conservation_label = QtWidgets.QLabel("")
        self.conservation_label.setWordWrap(True)
        self.conservation_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.prediction_box.model_label)
        lay.addWidget(self.tree, 2)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.state_label)
        lay.addWidget(self.prediction_box, 1)
        lay.addWidget(self.result_heading)
        lay.addWidget(self.conservation_label)

    # -- reading the session ---------------------------------------------------------
    def refresh(self) -> None:
        """Show the session's current method, parameters, target and device."""
        s = self.session
        self._updating = True
        try:
            methods = {}
            for name, label, available, _reason in s.available_methods():
                if available:
                    methods[label] = name
            panels = s.panels
            if not panels:
                return
            state = panels[self.panel]
            params = dict(state.params)
            if state.method not in methods.values():
                methods[state.method] = state.method
            self.root.child("method").setLimits(methods)
            self.root.child("method").setValue(state.method)
            is_lrp = state.method == "lrp"
            preset_param = self.root.child("preset")
            preset_param.show(is_lrp)
            specs: tuple = ()
            if is_lrp:
                presets = s.lrp_presets()
                preset_param.setLimits({p.label or p.name: p.name for p in presets})
                preset = params.get("preset")
                preset_param.setValue(preset)
                info = next((p for p in presets if p.name == preset), None)
                specs = tuple(info.params) if info is not None else ()
            else:
                specs = tuple(sp for sp in s.method_params(state.method) if sp.name != "preset")
            self._show_params(state.method, params.get("preset"), specs, params, self._auto_values())
            self._refresh_target()
            devices = _available_devices()
            self.root.child("device").setLimits(devices)
            self.root.child("device").setValue(s.device)
            self.root.child("precision").setValue(s.precision)
        finally:
            self._updating = False
        self.refresh_prediction()
        self.refresh_result()

    def _auto_values(self) -> dict[str, float]:
        """What "automatic" parameters resolve to on this input (ZBox bounds: its min/max)."""
        pred = self.session.prediction
        rng = getattr(pred, "input_values", None) if pred is not None else None
        return {} if rng is None else {"low": float(rng[0]), "high": float(rng[1])}

    def _show_params(self, method: str, preset: Any, specs: tuple, values: dict[str, Any],
                     auto: dict[str, float] | None = None) -> None:
        group = self.root.child("params")
        auto = auto or {}
        structure = (method, preset, tuple(sp.name for sp in specs),
                     tuple(sorted(auto.items())) if any(values.get(sp.name) is None for sp in specs) else ())
        self._specs = specs_by_name(specs)
        if structure != self._structure:
            group.clearChildren()
            for sp in specs:
                group.addChild(spec_to_param(sp, values.get(sp.name), auto.get(sp.name)))
            self._structure = structure
        else:
            for sp in specs:
                if sp.name in values and not self._debounce.isActive():
                    group.child(sp.name).setValue(spec_to_param(sp, values[sp.name])["value"])
        group.show(bool(specs))

    def _refresh_target(self) -> None:
        s = self.session
        model = s.model
        pred = s.prediction
        labels = list(getattr(model, "labels", []) or []) if model is not None else []
        if pred is not None and not labels:
            labels = list(pred.labels)
        probs = None if pred is None else list(pred.probabilities)
        seg = getattr(model, "task", "classification") == "segmentation"
        target = s.target
        targets: dict[str, str] = {}
        contrasts: dict[str, str] = {"none": "none"}
        if seg:
            targets["Largest predicted structure"] = "pred"
            for i, name in enumerate(labels):
                targets[f"Region: {name} (in mask)" if s.mask is not None else f"Region: {name}"] = f"r{i}"
        else:
            pname = labels[pred.predicted] if pred is not None and pred.predicted < len(labels) else "…"
            targets[f"Predicted class ({pname})"] = "pred"
            for i, name in enumerate(labels):
                p = f" ({100 * probs[i]:.1f} %)" if probs is not None and i < len(probs) else ""
                targets[f"{name}{p}"] = str(i)
                contrasts[name] = str(i)
        value, other = "pred", "none"
        if isinstance(target, tuple) and target[:1] == ("region",):
            value = f"r{target[1]}"
        elif isinstance(target, tuple) and len(target) == 2:
            value, other = str(target[0]), str(target[1])
        elif isinstance(target, int):
            value = str(target)
        self.root.child("target").setLimits(targets)
        self.root.child("target").setValue(value if value in targets.values() else "pred")
        self.root.child("contrast").setLimits(contrasts)
        self.root.child("contrast").setValue(other if other in contrasts.values() else "none")
        self.root.child("contrast").show(not seg)

    def refresh_prediction(self) -> None:
        s = self.session
        self.prediction_box.show_model(s.model, s.model_path)
        self.prediction_box.show_prediction(s.prediction, getattr(s, "prediction_error", None))

    def refresh_result(self) -> None:
        s = self.session
        res = s.result(self.panel) if s.panels else None
        if res is None:
            method = s.panels[self.panel].method if s.panels else "lrp"
            self.result_heading.setText("<b>Conservation (LRP)</b>" if method == "lrp" else "<b>Relevance sum</b>")
            self.conservation_label.setText("—")
            self.state_label.setText(self._idle_text())
            return
        rel = res.relevance
        what = res.request.method + (f" ({res.request.preset})" if res.request.preset else "")
        wanted = s.panels[self.panel].method
        if res.preview:
            self.state_label.setText(f"Showing a PREVIEW: {what} (fast) while {wanted} is computed…")
            self.result_heading.setText(f"<b>Preview: {res.request.method}</b> (not {wanted})")
        else:
            self.state_label.setText(f"Showing: {what}")
            self.result_heading.setText("<b>Conservation (LRP)</b>" if res.request.method == "lrp"
                                        else f"<b>Relevance sum ({res.request.method})</b>")
        c = res.conservation
        if c is None:
            self.conservation_label.setText(f"Σ relevance = {rel.input_sum if rel.input_sum is not None else float('nan'):.4g}"
                                            " (this method has no conservation law)")
            return
        rel_err = f" ({100 * c.relative_error:.2g} %)" if c.relative_error is not None else ""
        self.conservation_label.setText(
            f"Explained output f(x) = {c.explained:.4g}<br>"
            f"Σ relevance on the input = {c.input_sum:.4g}<br>"
            f"Absorbed by biases / stabilisers = {c.absorbed:.4g}<br>"
            f"Unaccounted (rounding) = {c.error:.2g}{rel_err}"
        )

    def set_progress(self, panel: int, fraction: float) -> None:
        if panel == self.panel:
            self.progress_bar.setValue(int(round(1000 * fraction)))

    def set_busy(self, panel: int, busy: bool) -> None:
        if panel != self.panel:
            return
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(0)
            self.state_label.setText("Explaining…")
        else:
            self.progress_bar.setValue(0)
            self.refresh_result()

    def _idle_text(self) -> str:
        """What the panel says without a result: failed (and why), no model, computing, or cancelled."""
        s = self.session
        error = s.panel_error(self.panel) if s.panels and hasattr(s, "panel_error") else None
        if error:
            return f"Failed: {error}"
        if s.model is None:
            return "No model"
        if s.scan is None:
            return "No scan"
        if s.panels and s.is_busy(self.panel):
            return "Explaining…"
        return "Cancelled (F5 explains again)"

    # -- writing to the session -------------------------------------------------------
    def _on_tree(self, _root: Parameter, changes: list) -> None:
        if self._updating:
            return
        s = self.session
        for param, change, data in changes:
            if change != "value":
                continue
            name = param.name()
            parent = param.parent()
            if parent is not None and parent.name() == "params":
                spec = self._specs.get(name)
                if spec is not None:
                    self._pending[name] = param_value(spec, data)
                    self._debounce.start()
            elif name == "method":
                s.set_panel_method(self.panel, data)
            elif name == "preset":
                s.set_panel_method(self.panel, "lrp", preset=data)
            elif name in ("target", "contrast"):
                self._apply_target()
            elif name == "device":
                s.set_device(data)
            elif name == "precision":
                s.set_precision(data)

    def _apply_target(self) -> None:
        t = self.root.child("target").value()
        other = self.root.child("contrast").value()
        if t.startswith("r"):
            self.session.set_target({"kind": "region", "index": int(t[1:])})
            return
        if t == "pred":
            pred = self.session.prediction
            if other != "none" and pred is not None and int(other) != pred.predicted:
                self.session.set_target((pred.predicted, int(other)))
            else:
                self.session.set_target(None)
            return
        if other != "none" and other != t:
            self.session.set_target((int(t), int(other)))
        else:
            self.session.set_target(int(t))

    def _flush_params(self) -> None:
        if self._pending:
            changes, self._pending = self._pending, {}
            self.session.set_panel_params(self.panel, **changes)

    def flush(self) -> None:
        """Apply debounced edits now (tests, closing)."""
        self._debounce.stop()
        self._flush_params()
