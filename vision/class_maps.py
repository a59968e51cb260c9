"""Class maps: which UrbanEye object kind each label of a detector becomes, or None to ignore the label.

A detector trained elsewhere names its classes its own way (COCO's ``motorcycle``, a city's ``stall``).
The rules only know ``OBJECT_KINDS``, so every model label is resolved once, at load, in this order:

1. the map given for this model (``model.class_map`` in the cameras file, or a built-in map such as
   ``coco`` recorded when the model was imported with ``urbaneye models import --class-map coco``);
2. a label that is itself an object kind (``person``, ``garbage`` ... — our own models);
3. ``DEFAULT_CLASS_MAP``, common public-model spellings (``pedestrian``, ``motorbike``, ``scooter`` ...);
4. anything else is ignored.

Example:
    >>> [str(k) if k else None for k in resolve_class_map(["person", "car", "motorcycle"], COCO_CLASS_MAP)]
    ['person', None, 'e_bike']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vision.types import OBJECT_KINDS, ObjectKind

#: Labels of common public models (COCO and friends) that mean one of our object kinds; used for labels
#: the model's own class map does not mention.
DEFAULT_CLASS_MAP: dict[str, ObjectKind] = {
    "person": ObjectKind.PERSON,
    "pedestrian": ObjectKind.PERSON,
    "bicycle": ObjectKind.BICYCLE,
    "bike": ObjectKind.BICYCLE,
    "motorcycle": ObjectKind.E_BIKE,
    "motorbike": ObjectKind.E_BIKE,
    "e-bike": ObjectKind.E_BIKE,
    "ebike": ObjectKind.E_BIKE,
    "scooter": ObjectKind.E_BIKE,
}

#: The 80 COCO labels in class-id order, as every COCO-pretrained ultralytics YOLO names them.
COCO80_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: COCO label -> object kind. Only the three COCO classes that *are* one of our kinds are kept:
#: ``person``; ``bicycle`` (shared bikes included); ``motorcycle`` -> ``e_bike``, because COCO's motorcycle
#: class covers the scooter-shaped electric bikes (电动自行车) parked on Chinese pavements. COCO has no class
#: for a stall, garbage, a bin, a grill or smoke, and its nearest look-alikes are everyday street objects —
#: ``umbrella`` and ``dining table`` (cafés, walkers), ``suitcase``/``backpack``/``handbag`` (carried bags),
#: ``bottle``/``cup`` (in hands and on tables), ``oven``, ``potted plant``, ``bench`` — that would open
#: vending, garbage and barbecue cases on lawful scenes. They are ignored, like every other COCO label, so
#: a COCO model drives bike mis-parking (and the person context of the other rules); vending, garbage and
#: barbecue need a model that knows those objects (the retraining loop, or a city model with its own map).
COCO_CLASS_MAP: dict[str, ObjectKind | None] = {
    label: {
        "person": ObjectKind.PERSON,
        "bicycle": ObjectKind.BICYCLE,
        "motorcycle": ObjectKind.E_BIKE,
    }.get(label)
    for label in COCO80_LABELS
}

#: Built-in maps by the name ``--class-map NAME`` accepts, with the labels a model must have to use one.
BUILTIN_CLASS_MAPS: dict[str, tuple[tuple[str, ...], dict[str, ObjectKind | None]]] = {
    "coco": (COCO80_LABELS, COCO_CLASS_MAP),
}


class ClassMapError(ValueError):
    """A class map that does not fit the model's labels; the message names the labels and the fix."""


def builtin_class_map(name: str, labels: Sequence[str]) -> dict[str, str | None]:
    """The built-in map ``name`` as ``{label: kind or None}``, checked against the model's ``labels``.

    Raises:
        ClassMapError: unknown name, or the model's labels are not the ones the map was written for.

    Example:
        >>> builtin_class_map("coco", COCO80_LABELS)["motorcycle"]
        'e_bike'
    """
    if name not in BUILTIN_CLASS_MAPS:
        raise ClassMapError(
            f"unknown built-in class map {name!r}; built-in maps are {sorted(BUILTIN_CLASS_MAPS)}, "
            "or give a YAML file of label: kind lines"
        )
    expected, mapping = BUILTIN_CLASS_MAPS[name]
    if len(labels) != len(expected):
        raise ClassMapError(
            f"the model has {len(labels)} labels but the {name!r} class map is for the {len(expected)} "
            f"{name.upper()} labels ({expected[0]} … {expected[-1]}); give a YAML class map for this model's "
            f"labels {list(labels)[:12]}{' …' if len(labels) > 12 else ''}"
        )
    differ = [
        (i, got, want) for i, (got, want) in enumerate(zip(labels, expected, strict=True)) if got != want
    ]
    if differ:
        shown = ", ".join(f"{i}: {got!r} (expected {want!r})" for i, got, want in differ[:5])
        raise ClassMapError(
            f"the model's labels are not the {name.upper()} labels in order ({len(differ)} differ: {shown}); "
            "give a YAML class map for this model's labels"
        )
    return {label: None if kind is None else str(kind) for label, kind in mapping.items()}


def resolve_class_map(labels: Sequence[str], class_map: Mapping[str, str | None]) -> list[ObjectKind | None]:
    """Per model label (class-id order): the object kind it becomes, or None when the label is ignored.

    Args:
        labels: the model's class names, index = model class id.
        class_map: label -> kind name or None; it wins over the defaults (see the module docstring).

    Raises:
        ClassMapError: ``class_map`` names a label the model does not have, or a kind that does not exist.
    """
    unknown = [label for label in class_map if label not in labels]
    if unknown:
        raise ClassMapError(
            f"class_map names label(s) {unknown} that the model does not have; its labels are {list(labels)}"
        )
    kinds = {str(k): k for k in OBJECT_KINDS}
    bad = {label: kind for label, kind in class_map.items() if kind is not None and kind not in kinds}
    if bad:
        raise ClassMapError(
            f"class_map maps {bad} to unknown kind(s); use one of {sorted(kinds)} or null to ignore a label"
        )
    out: list[ObjectKind | None] = []
    for label in labels:
        if label in class_map:
            target = class_map[label]
            out.append(None if target is None else kinds[target])
        elif label in kinds:
            out.append(kinds[label])
        else:
            out.append(DEFAULT_CLASS_MAP.get(label.lower()))
    return out
