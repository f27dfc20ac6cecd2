"""The pre-flight dialog: why a run did not start (:mod:`worldstudio.core.generation.preflight`),
every problem in one list with what fixes it, and a button where the studio can do the fix:

- a missing model: Download (online; the model manager downloads it) or Manage models (offline:
  the manager's Use folder points at a copy);
- not enough memory where another profile fits: Use profile NAME (the run's memory profile);
- a camera path outside the scene: Edit the path;
- only warnings: Run anyway (the run goes on with them; the CLI prints them and goes on).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from worldstudio.core.generation.preflight import Preflight, Problem

TITLES = {
    "models": "Models",
    "memory": "Memory",
    "gpu": "GPU",
    "disk": "Disk space",
    "camera": "Camera path",
}


class PreflightDialog(QDialog):
    """The problems of a refused run. ``on_models(names)``, ``on_profile(name)``,
    ``on_camera()`` and ``on_run_anyway()`` are what its buttons do (a button is left out when its
    callback is None)."""

    def __init__(
        self,
        preflight: Preflight,
        parent: QWidget | None = None,
        on_models: Callable[[tuple[str, ...]], None] | None = None,
        on_profile: Callable[[str], None] | None = None,
        on_camera: Callable[[], None] | None = None,
        on_run_anyway: Callable[[], None] | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("preflightDialog")
        self.setWindowTitle("Before the run")
        self.preflight = preflight
        self.fix_buttons: list[QPushButton] = []
        errors, warnings = preflight.errors, preflight.warnings
        if errors:
            head = (
                f"The run cannot start: {preflight.summary()}. Nothing was written. Fix these "
                "and press Generate again."
            )
        else:
            head = f"Before the run: {preflight.summary()}. Run anyway, or fix them first."
        heading = QLabel(head)
        heading.setWordWrap(True)
        heading.setObjectName("preflightHeading")

        rows = QWidget()
        rl = QVBoxLayout(rows)
        rl.setContentsMargins(0, 0, 0, 0)
        for problem in [*errors, *warnings]:
            rl.addWidget(self._row(problem, on_models, on_profile, on_camera))
        rl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(rows)

        buttons = QDialogButtonBox()
        self.close_button = buttons.addButton("Close", QDialogButtonBox.ButtonRole.RejectRole)
        self.close_button.clicked.connect(self.reject)
        self.run_anyway_button: QPushButton | None = None
        if not errors and on_run_anyway is not None:
            self.run_anyway_button = buttons.addButton(
                "Run anyway", QDialogButtonBox.ButtonRole.AcceptRole
            )
            self.run_anyway_button.setToolTip("Start the run with these warnings")
            self.run_anyway_button.clicked.connect(lambda: (self.accept(), on_run_anyway()))

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        self.resize(720, min(620, 170 + 120 * len(preflight.problems)))

    def _row(self, p: Problem, on_models, on_profile, on_camera) -> QFrame:
        frame = QFrame()
        frame.setObjectName("preflightProblem")
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        colour = "#ff8a7a" if p.severity == "error" else "#e0c070"
        kind = QLabel(
            f"<b style='color:{colour}'>{p.severity.upper()}</b> · {TITLES.get(p.check, p.check)}"
        )
        text = QLabel(p.text)
        text.setWordWrap(True)
        text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        fix = QLabel(f"<i>Fix:</i> {p.fix}")
        fix.setWordWrap(True)
        fix.setObjectName("hint")
        fix.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(kind, 1)
        button = None
        if p.check == "models" and p.models and on_models is not None:
            offline = p.severity == "error"
            button = QPushButton("Manage models…" if offline else "Download")
            button.setToolTip(
                "Open the model manager: point Use folder at a copy of the model"
                if offline
                else f"Download {', '.join(p.models)} now"
            )
            button.clicked.connect(lambda _=False, m=p.models: on_models(m))
        elif p.check == "memory" and p.profile and on_profile is not None:
            button = QPushButton(f"Use profile {p.profile}")
            button.setToolTip("Choose this memory profile for the run (it fits)")
            button.clicked.connect(lambda _=False, name=p.profile: on_profile(name))
        elif p.check == "camera" and on_camera is not None:
            button = QPushButton("Edit the path…")
            button.setToolTip("Open the camera path dialog")
            button.clicked.connect(lambda _=False: on_camera())
        if button is not None:
            button.setObjectName(f"fix-{p.check}")
            self.fix_buttons.append(button)
            top.addWidget(button)
        layout = QVBoxLayout(frame)
        layout.addLayout(top)
        layout.addWidget(text)
        layout.addWidget(fix)
        return frame
