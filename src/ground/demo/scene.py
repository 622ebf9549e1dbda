"""Scenes of coloured shapes for the synthetic demo corpus: layout, referring expressions, captions.

Used by `ground.demo.corpus` (run `python -m ground.demo.corpus --out DIR --seed 0`); nothing
here touches the disk. Every random choice comes from the caller's numpy Generator, so a scene is a
pure function of its seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Saturated colours about 50 degrees of hue apart, so that a low-resolution feature (or yuv420p's
# halved chroma) still tells them apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (235, 200, 30),
    "green": (40, 170, 60),
    "cyan": (30, 190, 200),
    "blue": (40, 80, 220),
    "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
BACKGROUND = (235, 235, 235)
# Side ranges in pixels for a 64-pixel short side; scaled for other canvases. The gap between
# 16 and 22 keeps "small" and "large" apart even after the image is resized.
SIDE_RANGE = {"small": (12, 16), "large": (22, 30), "medium": (14, 20)}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
# Attribute subsets tried when naming an object; the shape is always said.
ATTRIBUTE_SETS: tuple[tuple[str, ...], ...] = ((), ("color",), ("size",), ("size", "color"))
RELATIONS = ("left of", "right of", "above", "below")


@dataclass(frozen=True)
class Shape:
    """One drawn object; `box` is [x1, y1, x2, y2] in pixels, x2/y2 exclusive, tight."""

    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]

    def record(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "box": list(self.box)}

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2


@functools.cache
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean mask of a shape drawn with PIL (no anti-aliasing, so colours stay exact).

    Each shape touches all four edges of its side x side square, so a box computed as corner +
    side is tight; that invariant is checked here rather than assumed.
    """
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([0, 0, side - 1, side - 1], fill=1)
    elif shape == "square":
        draw.rectangle([0, 0, side - 1, side - 1], fill=1)
    elif shape == "triangle":
        draw.polygon([(0, side - 1), (side - 1, side - 1), ((side - 1) / 2, 0)], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if canvas.getbbox() != (0, 0, side, side):
        raise AssertionError(f"a {shape} of side {side} does not fill its box")
    mask = np.asarray(canvas, dtype=bool)
    mask.setflags(write=False)
    return mask


def sample_side(rng: np.random.Generator, size: str, short_side: int) -> int:
    """A side length for `size`, scaled from the 64-pixel reference canvas."""
    low, high = SIDE_RANGE[size]
    scale = short_side / 64
    return int(rng.integers(round(low * scale), round(high * scale) + 1))


def place_rects(
    rng: np.random.Generator, dims: list[tuple[int, int]], width: int, height: int, gap: int = 3
) -> list[tuple[int, int]] | None:
    """Top-left corners for rectangles of `dims` (w, h), pairwise `gap` apart; None if crowded.

    Rejection sampling is enough at these densities; the caller resamples sizes on None.
    """
    taken: list[tuple[int, int, int, int]] = []
    corners: list[tuple[int, int]] = []
    for w, h in dims:
        if w > width or h > height:
            return None
        for _ in range(200):
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            if all(
                x + w + gap <= a or a2 + gap <= x or y + h + gap <= b or b2 + gap <= y
                for a, b, a2, b2 in taken
            ):
                break
        else:
            return None
        taken.append((x, y, x + w, y + h))
        corners.append((x, y))
    return corners


def sample_scene(
    rng: np.random.Generator, width: int, height: int, count: int, *, distinct_colors: bool
) -> list[Shape]:
    """`count` non-overlapping shapes with pairwise distinct (shape, colour, size), left to right.

    Distinct triples guarantee every object has a unique attribute description; sorting left to
    right makes captions list objects in reading order.
    """
    short = min(width, height)
    for attempt in range(100):
        n = max(2, count - attempt // 25)  # a crowded draw eventually drops an object
        colors = rng.permutation(list(COLORS))[:n] if distinct_colors else None
        triples: list[tuple[str, str, str]] = []
        while len(triples) < n:
            color = (
                str(colors[len(triples)]) if colors is not None else str(rng.choice(list(COLORS)))
            )
            triple = (str(rng.choice(SHAPES)), color, str(rng.choice(SIZES)))
            if triple not in triples:
                triples.append(triple)
        masks = [shape_mask(s, sample_side(rng, size, short)) for s, _, size in triples]
        corners = place_rects(rng, [(m.shape[1], m.shape[0]) for m in masks], width, height)
        if corners is not None:
            shapes = [
                Shape(s, c, size, (x, y, x + m.shape[1], y + m.shape[0]))
                for (s, c, size), m, (x, y) in zip(triples, masks, corners)
            ]
            return sorted(shapes, key=lambda o: (o.box[0], o.box[1]))
    raise RuntimeError(f"could not place {count} shapes on a {width}x{height} canvas")


def describe(obj: Shape, attributes: tuple[str, ...]) -> str:
    """'the small red circle' with only the attributes asked for, in English adjective order."""
    words = [getattr(obj, name) for name in ("size", "color") if name in attributes]
    return " ".join(["the", *words, obj.shape])


def _matches(other: Shape, obj: Shape, attributes: tuple[str, ...]) -> bool:
    return other.shape == obj.shape and all(
        getattr(other, a) == getattr(obj, a) for a in attributes
    )


def unique_attributes(objs: list[Shape], index: int) -> list[tuple[str, ...]]:
    """Attribute subsets whose description matches object `index` and no other object."""
    target = objs[index]
    return [
        attrs
        for attrs in ATTRIBUTE_SETS
        if not any(_matches(o, target, attrs) for k, o in enumerate(objs) if k != index)
    ]


def _holds(target: Shape, anchor: Shape, relation: str) -> bool:
    """Strict: the target lies wholly on that side of the anchor, so no viewer would doubt it."""
    tx1, ty1, tx2, ty2 = target.box
    ax1, ay1, ax2, ay2 = anchor.box
    return {
        "left of": tx2 <= ax1,
        "right of": tx1 >= ax2,
        "above": ty2 <= ay1,
        "below": ty1 >= ay2,
    }[relation]


def _clearly_fails(other: Shape, anchor: Shape, relation: str) -> bool:
    """Lenient opposite of `_holds`: the other object's centre is on the anchor's other side."""
    (ox, oy), (ax, ay) = other.center, anchor.center
    return {"left of": ox >= ax, "right of": ox <= ax, "above": oy >= ay, "below": oy <= ay}[
        relation
    ]


def spatial_expressions(objs: list[Shape], index: int) -> list[str]:
    """Every 'the <target> <relation> the <anchor>' that singles out object `index`.

    The anchor is named uniquely; other objects fitting the target's words must clearly fail the
    relation, so the relation (not luck) resolves any ambiguity of the target's words.
    """
    target = objs[index]
    found = []
    for j, anchor in enumerate(objs):
        if j == index:
            continue
        for relation in RELATIONS:
            if not _holds(target, anchor, relation):
                continue
            for anchor_attrs in unique_attributes(objs, j):
                for attrs in ATTRIBUTE_SETS:
                    rivals = [
                        o
                        for k, o in enumerate(objs)
                        if k not in (index, j) and _matches(o, target, attrs)
                    ]
                    if all(_clearly_fails(o, anchor, relation) for o in rivals):
                        found.append(
                            f"{describe(target, attrs)} {relation} {describe(anchor, anchor_attrs)}"
                        )
    return found


def referring_expressions(
    rng: np.random.Generator, objs: list[Shape], spatial_rate: float = 0.4
) -> list[dict]:
    """One expression per object (as much REC signal per image as there is); each text picks
    out exactly one object."""
    targets = list(range(len(objs)))
    expressions = []
    for index in targets:
        spatial = spatial_expressions(objs, index)
        if spatial and rng.random() < spatial_rate:
            text = str(rng.choice(spatial))
        else:
            options = unique_attributes(objs, index)
            text = describe(objs[index], options[int(rng.integers(len(options)))])
        expressions.append({"text": text, "object": index})
    return expressions


def join_words(parts: list[str]) -> str:
    """'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_caption(objs: list[Shape]) -> str:
    """'three shapes: a small red circle, a large blue square and a small green triangle'."""
    items = [f"a {o.size} {o.color} {o.shape}" for o in objs]
    noun = "shape" if len(objs) == 1 else "shapes"
    return f"{NUMBER_WORDS[len(objs)]} {noun}: {join_words(items)}"
