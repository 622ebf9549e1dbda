"""Videos for the synthetic demo corpus: shapes that appear, move or change colour in set spans.

Used by `ground.demo.corpus` (run `python -m ground.demo.corpus --out DIR --seed 0`).
Every actor in a video has its own colour (a colour change takes a further unused one), so an event
text names exactly one thing on screen and a span is visible as the presence of one colour.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ground.demo.media import paint
from ground.demo.scene import BACKGROUND, COLORS, SHAPES, place_rects, sample_side

EVENT_KINDS = ("appear", "move", "change")
MIN_EVENT_SECONDS = 1.5
MAX_EVENT_FRACTION = 0.35  # short events: "always the mean span" must not already score well
MOVES = {"to the right": (1, 0), "to the left": (-1, 0), "up": (0, -1), "down": (0, 1)}


@dataclasses.dataclass(frozen=True)
class Actor:
    """A shape in a video and the single event it takes part in (none for kind 'static').

    `start` is the event's first frame and `end` the first frame after it, so in seconds the span
    is [start / fps, end / fps]. A mover stands at `origin` before the span and at `target` after.
    """

    kind: str
    shape: str
    color: str
    side: int
    start: int
    end: int
    origin: tuple[int, int]
    target: tuple[int, int]
    direction: str = ""
    new_color: str = ""

    def state(self, frame: int) -> tuple[bool, int, int, str]:
        """(visible, x, y, colour) at a frame."""
        inside = self.start <= frame < self.end
        color = self.new_color if self.kind == "change" and inside else self.color
        progress = min(max((frame - self.start) / (self.end - self.start), 0.0), 1.0)
        if self.kind != "move":
            progress = 0.0
        (x0, y0), (x1, y1) = self.origin, self.target
        x, y = round(x0 + (x1 - x0) * progress), round(y0 + (y1 - y0) * progress)
        return (inside or self.kind != "appear"), x, y, color

    def event(self, fps: int) -> dict:
        """The grounding record: a text naming this actor and its span in seconds."""
        name = f"the {self.color} {self.shape}"
        text = {
            "appear": f"{name} is visible",
            "move": f"{name} moves {self.direction}",
            "change": f"{name} turns {self.new_color}",
        }[self.kind]
        return {"text": text, "start": round(self.start / fps, 6), "end": round(self.end / fps, 6)}

    def phrase(self, n_frames: int) -> str:
        """A caption clause that is true of the whole video, edges included."""
        name = f"a {self.color} {self.shape}"
        if self.kind == "static":
            return f"{name} stays still throughout"
        if self.kind == "move":
            return f"{name} moves {self.direction}"
        if self.kind == "change":
            back = f" and back to {self.color}" if self.end < n_frames else ""
            return f"{name} turns {self.new_color}{back}"
        if self.start == 0:
            return f"{name} is visible at first and then disappears"
        return f"{name} appears" + (" and then disappears" if self.end < n_frames else "")


def _span(rng: np.random.Generator, n_frames: int, fps: int, first: int) -> tuple[int, int]:
    """A span of 1.5 s up to MAX_EVENT_FRACTION of the video, starting no earlier than frame `first`."""
    shortest = math.ceil(MIN_EVENT_SECONDS * fps - 1e-9)
    longest = max(shortest, int(MAX_EVENT_FRACTION * n_frames))
    length = int(rng.integers(shortest, longest + 1))
    start = int(rng.integers(first, n_frames - length + 1))
    return start, start + length


def _draft(
    rng: np.random.Generator, events: tuple[str, ...]
) -> tuple[list[str], list[str]] | None:
    """Kinds (1-3 events of `events`, maybe one static shape) and colours in order of use; None
    if there are too few colours."""
    kinds = [str(k) for k in rng.choice(events, size=int(rng.integers(1, 4)))]
    if rng.random() < 0.5:
        kinds.append("static")
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    if len(kinds) + kinds.count("change") > len(colors):
        return None
    return kinds, colors


def plan_video(
    rng: np.random.Generator, size: int, n_frames: int, fps: int,
    events: tuple[str, ...] = EVENT_KINDS,
) -> list[Actor]:  # fmt: skip
    """Actors for one video, each event of a kind in `events`: non-overlapping paths (a mover's
    whole sweep is kept clear)."""
    unknown = sorted(set(events) - set(EVENT_KINDS))
    if not events or unknown:
        raise ValueError(f"video events must be some of {EVENT_KINDS}, got {list(events)}")
    for _ in range(100):
        draft = _draft(rng, events)
        if draft is None:
            continue
        kinds, colors = draft
        spare = colors[len(kinds) :]
        sides = [sample_side(rng, "medium", size) for _ in kinds]
        moves = [str(rng.choice(list(MOVES))) if k == "move" else "" for k in kinds]
        dists = [int(rng.integers(round(0.35 * size), round(0.55 * size) + 1)) for _ in kinds]
        dims = []
        for side, move, dist in zip(sides, moves, dists):
            dx, dy = MOVES[move] if move else (0, 0)
            dims.append((side + abs(dx) * dist, side + abs(dy) * dist))
        corners = place_rects(rng, dims, size, size)
        if corners is None:
            continue
        actors = []
        for i, kind in enumerate(kinds):
            dx, dy = MOVES[moves[i]] if moves[i] else (0, 0)
            x, y = corners[i]
            origin = (x + (dists[i] if dx < 0 else 0), y + (dists[i] if dy < 0 else 0))
            target = (origin[0] + dx * dists[i], origin[1] + dy * dists[i])
            # a colour change never starts at frame 0, so "turns" always has a before
            first = 1 if kind == "change" else 0
            start, end = (0, n_frames) if kind == "static" else _span(rng, n_frames, fps, first)
            actor = Actor(
                kind, str(rng.choice(SHAPES)), colors[i], sides[i], start, end, origin, target
            )
            if kind == "move":
                actor = dataclasses.replace(actor, direction=moves[i])
            if kind == "change":
                actor = dataclasses.replace(actor, new_color=spare.pop())
            actors.append(actor)
        return actors
    raise RuntimeError(f"could not plan a video on a {size}x{size} canvas")


def render_video(actors: list[Actor], size: int, n_frames: int) -> np.ndarray:
    """NxHxWx3 uint8 frames of the actors on the plain background."""
    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    for frame in range(n_frames):
        for actor in actors:
            visible, x, y, color = actor.state(frame)
            if visible:
                paint(frames[frame], actor.shape, color, x, y, actor.side)
    return frames


def video_caption(actors: list[Actor], n_frames: int) -> str:
    """Events in time order ('..., then ...'), then any static shape after a semicolon."""
    events = sorted((a for a in actors if a.kind != "static"), key=lambda a: (a.start, a.end))
    parts = [events[0].phrase(n_frames)]
    for previous, actor in itertools.pairwise(events):
        joiner = "then" if actor.start > previous.start else "meanwhile"
        parts.append(f"{joiner} {actor.phrase(n_frames)}")
    caption = ", ".join(parts)
    statics = [a.phrase(n_frames) for a in actors if a.kind == "static"]
    return caption + "".join(f"; {s}" for s in statics)
