"""A frame with its action drawn on it (a small controller, in the spirit of DeepVerse's overlay):
in the bottom-left corner a 3x3 pad whose lit cell is the translation (the centre: stay), two
arrows beside it for the steering, a bar for rise and one for pitch, and the step's code above.
"""

from __future__ import annotations

import numpy as np

from worldstudio.core.play.controls import PlayStep

# the pad's cell (column, row) of each translation code
_CELL = {
    "fL": (0, 0),
    "F": (1, 0),
    "fR": (2, 0),
    "L": (0, 1),
    "S": (1, 1),
    "R": (2, 1),
    "rL": (0, 2),
    "B": (1, 2),
    "rR": (2, 2),
}
_ON = (255, 200, 60, 255)
_OFF = (255, 255, 255, 70)
_PANEL = (0, 0, 0, 120)


def draw_action(frame: np.ndarray, step: PlayStep) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with ``step`` drawn on it (a new array)."""
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    c = max(5, min(h, w) // 16)  # a pad cell
    gap = max(1, c // 5)
    pad = 3 * c + 2 * gap
    margin = max(4, c // 2)
    text_h = 12
    panel_w = pad + 3 * c + 4 * gap + 2 * margin
    panel_h = pad + text_h + 3 * margin
    x0, y0 = margin, h - margin - panel_h
    img = Image.fromarray(np.ascontiguousarray(frame)).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.rectangle([x0, y0, x0 + panel_w, y0 + panel_h], fill=_PANEL)
    d.text((x0 + margin, y0 + margin // 2), step.text + step.extras, fill=(255, 255, 255, 255))
    px, py = x0 + margin, y0 + margin + text_h
    lit = _CELL[step.translation]
    for col in range(3):
        for row in range(3):
            cx, cy = px + col * (c + gap), py + row * (c + gap)
            d.rectangle([cx, cy, cx + c - 1, cy + c - 1], fill=_ON if (col, row) == lit else _OFF)
    # steering: a left and a right arrow beside the pad
    ax = px + pad + 2 * gap
    ay = py + c + gap + c // 2
    left = [(ax, ay), (ax + c, ay - c // 2), (ax + c, ay + c // 2)]
    bx = ax + c + gap
    right = [(bx + c, ay), (bx, ay - c // 2), (bx, ay + c // 2)]
    d.polygon(left, fill=_ON if step.steering == "L" else _OFF)
    d.polygon(right, fill=_ON if step.steering == "R" else _OFF)
    # rise (left bar) and pitch (right bar) above the arrows: lit at the top for up, bottom for down
    for i, value in enumerate((step.rise, step.pitch)):
        bx0 = ax + i * (c + gap) + c // 3
        for j, want in enumerate((1, -1)):
            by = py + j * (c // 2 + 1)
            d.rectangle(
                [bx0, by, bx0 + c // 3, by + c // 2 - 1], fill=_ON if value == want else _OFF
            )
    return np.asarray(Image.alpha_composite(img, layer).convert("RGB"))
