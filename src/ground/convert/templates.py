"""Instruction template pools per task (Table 11 of the GroundingGPT paper plus our paraphrases).

    >>> import random
    >>> from ground.convert.templates import render
    >>> render("rec", random.Random(0), exp="the small red circle")
    'Find the small red circle and tell me where it is.'

The first entries of every pool are the paper's own examples, verbatim except for one typo; the
rest are our paraphrases so that sampling has variety. Placeholders: `<exp>` a referring
expression, `<region>` a formatted box, `<time>` a formatted span, `<event>` an event description,
`<question>` a question asked about the media (VCR). The `grounded_caption` and `vcr` pools are
not in Table 11 (the paper turns Flickr30K Entities and VCR into stage-3 data): they are ours.
Like the paper, `<region>` and `<time>` follow the noun with no space ("the region[0.1, ...]").
Bump `TEMPLATE_VERSION` whenever a pool changes: it is recorded in every convert manifest.
"""

from __future__ import annotations

import random
import re

TEMPLATE_VERSION = "table11-v2"

_PLACEHOLDER = re.compile(r"<(exp|region|time|event|question)>")

POOLS: dict[str, tuple[str, ...]] = {
    "image_caption": (
        "Provide a brief description of the given image.",
        "Write a terse but informative summary of the picture.",
        "Share a concise interpretation of the image provided.",
        "Describe the image briefly.",
        "Give a short caption for this picture.",
        "Summarize the visual content of the image in one sentence.",
        "What does this image show? Answer briefly.",
        "Render a clear and concise summary of the photo.",
        "Present a compact description of the image's key features.",
    ),
    "reg": (
        "What object is present within the specified region<region>?",
        "Can you identify the item within the region<region>?",
        "Describe the object located within the region<region>.",
        "What is shown in the region<region>?",
        "Give a short description of the object in the area<region>.",
        "Which object occupies the region<region>?",
        "Name the thing you see inside the box<region>.",
        "Provide a referring expression for the object in the region<region>.",
    ),
    "rec": (
        "In this image, where is <exp> located?",
        "Can you identify the position of <exp> within this image?",
        "Please describe the location of <exp> in this image.",
        "Where is <exp> located in this picture?",
        "Give the bounding box of <exp>.",
        "Locate <exp> in the image.",
        "Find <exp> and tell me where it is.",
        "Which region of the image contains <exp>?",
        "Point out <exp> in this image with its coordinates.",
    ),
    # Table 11's "Object Attribute" row mixes colour and counting questions; they need different
    # answers, so the row is split in two pools.
    "object_color": (
        # `<exp>` is a bare noun phrase here ("circle[0.1, ...]"): the paper's "this <exp>".
        "What color is this <exp>?",
        "What is the color of this <exp>?",
        "Which color does the <exp> have?",
        "Tell me the color of the <exp>.",
        "Can you name the color of this <exp>?",
        "What colour is the <exp> in this image?",
        "Identify the color of the <exp>.",
        "Describe the color of this <exp>.",
    ),
    "object_count": (
        "How many <exp> are visible within this image?",
        # The paper prints "How mang"; the typo is not worth teaching a model.
        "How many <exp> are there in the image?",
        "Count the <exp> in this picture.",
        "What is the number of <exp> in the image?",
        "Can you count how many <exp> appear here?",
        "How many <exp> can you see?",
        "Tell me how many <exp> this image contains.",
        "Give the count of <exp> shown in the image.",
    ),
    # Flickr30K Entities: the caption with each grounded phrase followed by its box.
    "grounded_caption": (
        "Describe the image briefly and give the box of every object you mention.",
        "Write a short caption of the image with the coordinates of each object you mention.",
        "Briefly describe the image, following each object you name with its bounding box.",
        "Provide a brief description of the image and locate every object it mentions.",
        "Summarize the image in one sentence, giving the position of each object you refer to.",
        "Caption this picture and include the bounding box of every object you mention.",
        "What does this image show? Answer briefly and box each object you mention.",
        "Give a one-sentence description of the picture, grounding every object in it.",
    ),
    # VCR: `<question>` already carries the boxes of the people and objects it names.
    "vcr": (
        "<question> Answer the question and explain why.",
        "<question> Give your answer and the reason for it.",
        "<question> Answer, then justify your answer.",
        "Answer the question and give the rationale: <question>",
        "<question> Please answer and explain your reasoning.",
        "Look at the image and answer: <question> Also say why.",
        "<question> What is the answer, and why?",
        "Question: <question> Answer it and explain the reasoning behind your answer.",
    ),
    "video_caption": (
        "Relay a brief, clear account of the video shown.",
        "Offer a succinct explanation of the footage presented.",
        "Present a compact description of the clip\u2019s key features.",
        "Describe the video briefly.",
        "Summarize what happens in this clip.",
        "Give a short caption for the video.",
        "What does this video show? Answer concisely.",
        "Write a terse but informative summary of the footage.",
        "Provide a brief description of the given video.",
    ),
    "dense_caption": (
        "Describe the content shown in the video clip<time> of this video.",
        "What can you tell me about the video segment<time> in this video?",
        "Can you provide a description of the video snippet<time>?",
        "What happens during the time period<time>?",
        "Describe what is going on in the segment<time>.",
        "Summarize the part of the video<time>.",
        "What is shown in the interval<time> of the clip?",
        "Give a short description of the moment<time> in this video.",
    ),
    "temporal_grounding": (
        "When did <event> occur in the video?",
        "Tell me the timestamp when <event> happened.",
        "At what time does <event> take place in the video?",
        "Tell me when <event> in this video.",
        "Find the time segment in which <event>.",
        "Give the start and end time of the moment when <event>.",
        "Identify the interval during which <event>.",
        "Locate the segment of the video where <event>.",
    ),
    "audio_caption": (
        "Analyze the audio and provide a description of its content.",
        "Examine the audio and describe the different sounds present.",
        "Provide a detailed summary of the auditory elements in the audio clip.",
        "Describe what you hear in this audio.",
        "What sound does this clip contain?",
        "Give a short caption for the audio.",
        "Listen to the recording and summarize it briefly.",
        "Characterize the sound in this clip.",
    ),
    "sound_localization": (
        "What is the cause of the sound in this given image?",
        "Can you pinpoint the source of the sound in this image?",
        "Describe the location of the sound\u2019s origin in this image.",
        "Where in the image does the sound come from?",
        "Which object in this picture is making the sound?",
        "Locate the sound source in the image.",
        "Give the bounding box of the object that produces the sound.",
        "Find the origin of the sound you hear in this image.",
    ),
}


def placeholders(template: str) -> frozenset[str]:
    """Names of the placeholders a template uses, e.g. {'exp'}."""
    return frozenset(_PLACEHOLDER.findall(template))


def task_slots(task: str) -> frozenset[str]:
    """The slots every template of `task` needs (pools are uniform, checked by the tests)."""
    return placeholders(pool(task)[0])


def pool(task: str) -> tuple[str, ...]:
    try:
        return POOLS[task]
    except KeyError:
        raise ValueError(f"no template pool for task {task!r}; known: {sorted(POOLS)}") from None


def render(task: str, rng: random.Random, **slots: str) -> str:
    """One template of `task` drawn with `rng`, its placeholders replaced by `slots`.

    The slots must be exactly the task's placeholders: a missing or stray one is a caller bug.
    """
    expected = task_slots(task)
    if set(slots) != expected:
        raise ValueError(f"task {task!r} takes slots {sorted(expected)}, got {sorted(slots)}")
    template = rng.choice(pool(task))
    return _PLACEHOLDER.sub(lambda m: slots[m.group(1)], template)
