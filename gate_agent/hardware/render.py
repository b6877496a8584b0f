"""Camera-like frames of a QR pass, for the simulated camera, the demo and the tests.

A pass text becomes a QR code (segno, error level M) shown on a phone screen
(dark bezel, bright screen, faint banding) or printed on a paper card (white
card, printed border and text-like bars, on a darker background), then seen
through a camera: perspective tilt, distance, blur, motion blur, glare and
sensor noise. Pure numpy, OpenCV and segno; the same style and seed always
give the same frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import segno
from numpy.typing import NDArray

from gate_agent.hardware.images import Gray

__all__ = ["HARD", "PAPER", "PHONE", "PRESETS", "RenderStyle", "render_blank", "render_pass"]

Floats = NDArray[Any]  # float32 images; OpenCV's stubs type its results loosely


@dataclass(frozen=True, slots=True)
class RenderStyle:
    """How a pass looks to the camera; every random choice comes from `seed`."""

    medium: Literal["phone", "paper"] = "phone"
    frame_size: tuple[int, int] = (1280, 720)  # width, height in pixels
    scale: float = 0.5  # the code's side as a fraction of the frame height: the distance
    center: tuple[float, float] = (0.5, 0.5)  # where the code sits, as fractions of the frame
    yaw_deg: float = 0.0  # perspective tilt about the vertical axis
    pitch_deg: float = 0.0  # perspective tilt about the horizontal axis
    roll_deg: float = 0.0  # rotation in the image plane
    blur_sigma: float = 0.0  # focus blur, Gaussian sigma in pixels
    motion_px: int = 0  # motion blur length in pixels (0: none)
    motion_deg: float = 0.0  # motion direction
    glare: float = 0.0  # strength of a bright elliptical reflection, 0 to 1
    moire: float = 0.0  # depth of a phone screen's banding, 0 to 1
    noise_sigma: float = 0.0  # sensor noise, standard deviation in grey levels
    background: int = 70  # mean grey of the scene behind the pass
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse knobs outside their ranges."""
        width, height = self.frame_size
        if width < 64 or height < 64:
            raise ValueError(f"frame_size must be at least 64x64, got {self.frame_size}")
        if not 0.05 <= self.scale <= 1.0:
            raise ValueError(f"scale must be within 0.05..1, got {self.scale}")
        if not (0.0 <= self.glare <= 1.0 and 0.0 <= self.moire <= 1.0):
            raise ValueError("glare and moire must be within 0..1")
        if self.blur_sigma < 0 or self.motion_px < 0 or self.noise_sigma < 0:
            raise ValueError("blur_sigma, motion_px and noise_sigma must not be negative")


PHONE = RenderStyle(
    medium="phone", yaw_deg=12, pitch_deg=-8, roll_deg=4, blur_sigma=0.8,
    glare=0.25, moire=0.05, noise_sigma=3.0, seed=1,
)  # fmt: skip
"""A phone held fairly steadily, a little turned, a soft reflection on its screen."""

PAPER = RenderStyle(
    medium="paper", yaw_deg=-10, pitch_deg=12, roll_deg=-7, blur_sigma=0.7,
    glare=0.15, noise_sigma=4.0, seed=2,
)  # fmt: skip
"""A printed card held up to the camera, tipped back."""

HARD = RenderStyle(
    medium="phone", scale=0.55, yaw_deg=28, pitch_deg=14, roll_deg=12, blur_sigma=1.1,
    motion_px=4, motion_deg=20, glare=0.5, moire=0.12, noise_sigma=7.0, seed=3,
)  # fmt: skip
"""Strong tilt, blur, motion and glare: about as bad as a frame gets and still reads."""

PRESETS: dict[str, RenderStyle] = {"phone": PHONE, "paper": PAPER, "hard": HARD}
"""The presets by name, for the demo's command line."""


def render_pass(text: str, style: RenderStyle = PHONE) -> Gray:
    """Render `text` as a QR code (error level M) on a phone or card, seen by a camera."""
    rng = np.random.default_rng(style.seed)
    modules = _modules(text)
    width, height = style.frame_size
    module_px = style.scale * height / modules.shape[0]
    unit = max(2, math.ceil(module_px))  # object pixels per module: drawn sharp, then warped
    if style.medium == "phone":
        obj, mask, code_center = _phone(modules, unit, style.moire)
    else:
        obj, mask, code_center = _card(modules, unit, rng)
    frame = _background(style, rng)
    homography = _homography(obj.shape, code_center, module_px / unit, style)
    size = (width, height)
    warped = cv2.warpPerspective(obj, homography, size, flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(mask, homography, size, flags=cv2.INTER_LINEAR)
    frame = frame * (1.0 - cover) + warped * cover
    side = module_px * modules.shape[0]
    return _camera(frame, style, rng, side)


@functools.lru_cache(maxsize=32)
def _modules(text: str) -> NDArray[np.bool_]:
    """Encode `text` at error level M (not raised: the pass format is sized for M), cached."""
    qr = segno.make_qr(text, error="m", boost_error=False)
    modules = np.array(qr.matrix, dtype=bool)
    modules.flags.writeable = False  # shared by the cache
    return modules


def render_blank(style: RenderStyle = PHONE) -> Gray:
    """Render the empty scene: the background as the camera sees it, with nobody in front."""
    rng = np.random.default_rng(style.seed)
    frame = _background(style, rng)
    return _camera(frame, style, rng, style.scale * style.frame_size[1])


def _code_image(modules: NDArray[np.bool_], unit: int, dark: float, light: float) -> Floats:
    """Draw the modules with a 4-module quiet zone, `unit` pixels per module."""
    padded = np.pad(modules, 4)
    pixels = np.where(padded, dark, light).astype(np.float32)
    return np.kron(pixels, np.ones((unit, unit), dtype=np.float32))


def _phone(
    modules: NDArray[np.bool_], unit: int, moire: float
) -> tuple[Floats, Floats, tuple[float, float]]:
    """A phone: dark bezel, bright screen with a status bar, the code, text lines below it."""
    code = _code_image(modules, unit, dark=38.0, light=232.0)
    side = code.shape[0]
    screen_w = side + 4 * unit
    screen_h = int(screen_w * 1.65)
    bezel = max(4, screen_w // 16)
    obj = np.full((screen_h + 2 * bezel, screen_w + 2 * bezel), 22.0, dtype=np.float32)
    screen = np.full((screen_h, screen_w), 232.0, dtype=np.float32)
    screen[: screen_h // 14] = 190.0  # status bar
    top = int(screen_h * 0.16)
    left = (screen_w - side) // 2
    screen[top : top + side, left : left + side] = code
    for i in range(3):  # the app's text under the code
        y = top + side + (2 + 3 * i) * unit
        screen[y : y + unit, left + unit : left + side - (3 + 4 * i) * unit] = 120.0
    if moire > 0:
        # Banding from the screen's pixel grid beating against the sensor's.
        rows = np.arange(screen_h, dtype=np.float32)[:, None]
        screen *= 1.0 + moire * np.sin(rows * (2 * math.pi / (3.3 * unit)))
    obj[bezel:-bezel, bezel:-bezel] = screen
    mask = np.zeros(obj.shape, dtype=np.float32)
    corner = bezel * 2
    h, w = obj.shape
    cv2.rectangle(mask, (corner, 0), (w - 1 - corner, h - 1), 1.0, -1)
    cv2.rectangle(mask, (0, corner), (w - 1, h - 1 - corner), 1.0, -1)
    for cx, cy in ((corner, corner), (w - 1 - corner, corner), (corner, h - 1 - corner),
                   (w - 1 - corner, h - 1 - corner)):  # fmt: skip
        cv2.circle(mask, (cx, cy), corner, 1.0, -1)
    center = (bezel + left + side / 2, bezel + top + side / 2)
    return obj, mask, center


def _card(
    modules: NDArray[np.bool_], unit: int, rng: np.random.Generator
) -> tuple[Floats, Floats, tuple[float, float]]:
    """A paper card: printed border, a title and text-like bars around the code."""
    code = _code_image(modules, unit, dark=30.0, light=222.0)
    side = code.shape[0]
    card_w = side + 8 * unit
    card_h = int(card_w * 1.35)
    card = np.full((card_h, card_w), 222.0, dtype=np.float32)
    edge = 2 * unit
    far = (card_w - 1 - edge, card_h - 1 - edge)
    cv2.rectangle(card, (edge, edge), far, 90.0, max(1, unit // 2))
    left = (card_w - side) // 2
    card[4 * unit : 6 * unit, left + 2 * unit : left + side // 2] = 60.0  # title
    top = 8 * unit
    card[top : top + side, left : left + side] = code
    y = top + side + unit
    while y + unit < card_h - 3 * edge:  # printed lines of text, of varied length
        length = int(rng.uniform(0.4, 0.95) * (side - 2 * unit))
        card[y : y + unit, left + unit : left + unit + length] = 110.0
        y += 2 * unit
    mask = np.ones(card.shape, dtype=np.float32)
    return card, mask, (left + side / 2, top + side / 2)


def _background(style: RenderStyle, rng: np.random.Generator) -> Floats:
    """The scene behind the pass: a grey wall lit unevenly, with a few soft shapes."""
    width, height = style.frame_size
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    tilt = rng.uniform(-20.0, 20.0, size=2).astype(np.float32)
    frame = style.background + tilt[0] * xs + tilt[1] * ys
    shapes = np.zeros((height, width), dtype=np.float32)
    for _ in range(4):
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(0.05, 0.3) * width), int(rng.uniform(0.05, 0.3) * height))
        angle, shade = float(rng.uniform(0, 180)), float(rng.uniform(-30, 30))
        cv2.ellipse(shapes, center, axes, angle, 0, 360, shade, -1)
    soft: Floats = frame + _soft(shapes, width / 40)
    return soft


def _homography(
    shape: tuple[int, ...], center: tuple[float, float], px_per_unit: float, style: RenderStyle
) -> NDArray[Any]:
    """Map the flat object into the frame through a pinhole camera, tilted as the style says."""
    width, height = style.frame_size
    h, w = shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    points = np.zeros((4, 3), dtype=np.float64)
    points[:, 0] = (src[:, 0] - center[0]) * px_per_unit
    points[:, 1] = (src[:, 1] - center[1]) * px_per_unit
    yaw, pitch, roll = (math.radians(a) for a in (style.yaw_deg, style.pitch_deg, style.roll_deg))
    cy_, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy_, 0, sy], [0, 1, 0], [-sy, 0, cy_]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rotated = points @ (rz @ rx @ ry).T
    focal = float(width)  # about a 53 degree horizontal field of view
    depth = focal + rotated[:, 2]
    cx, cy = style.center[0] * width, style.center[1] * height
    dst = np.stack([cx + focal * rotated[:, 0] / depth, cy + focal * rotated[:, 1] / depth], axis=1)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def _soft(image: Floats, sigma: float) -> Floats:
    """Blur with a wide Gaussian cheaply: at reduced size, then scaled back up."""
    factor = max(1, int(sigma / 4))
    height, width = image.shape
    reduced = (max(1, width // factor), max(1, height // factor))
    small = cv2.resize(image, reduced, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / factor)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _camera(frame: Floats, style: RenderStyle, rng: np.random.Generator, side: float) -> Gray:
    """Add what the camera adds: glare, focus and motion blur, sensor noise; quantise."""
    width, height = style.frame_size
    if style.glare > 0:
        glow = np.zeros((height, width), dtype=np.float32)
        cx = int(style.center[0] * width + 0.3 * side)
        cy = int(style.center[1] * height - 0.25 * side)
        axes = (max(1, int(0.3 * side)), max(1, int(0.16 * side)))
        cv2.ellipse(glow, (cx, cy), axes, 30.0, 0, 360, 1.0, -1)
        glow = _soft(glow, max(1.0, 0.12 * side))
        frame = frame + style.glare * 220.0 * glow / max(float(glow.max()), 1e-6)
    if style.blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=style.blur_sigma)
    if style.motion_px > 1:
        kernel: Floats = np.zeros((style.motion_px, style.motion_px), dtype=np.float32)
        kernel[style.motion_px // 2, :] = 1.0
        middle = ((style.motion_px - 1) / 2, (style.motion_px - 1) / 2)
        turn = cv2.getRotationMatrix2D(middle, style.motion_deg, 1.0)
        kernel = cv2.warpAffine(kernel, turn, kernel.shape[::-1])
        kernel = (kernel / max(float(kernel.sum()), 1e-6)).astype(np.float32)
        frame = cv2.filter2D(frame, -1, kernel)
    if style.noise_sigma > 0:
        frame = frame + rng.normal(0.0, style.noise_sigma, frame.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
