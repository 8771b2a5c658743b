"""``astrocat models init MODEL.onnx``: a starter card read off the graph.

The shape, the layout guess, the number of outputs and the sha256 come from the file;
everything a graph cannot say (what the outputs mean, how pixels were normalised in
training) is left at a neutral default with a comment saying what to put there.
"""

from __future__ import annotations

from pathlib import Path

from astrocat.errors import CardError
from astrocat.models.card import (
    CARD_FILENAME,
    PREPROCESSINGS,
    RESIZE_FILTERS,
    TASKS,
    load_card,
    sha256_file,
)
from astrocat.models.graph import fmt_dims, guess_layout, n_outputs, open_session, signature


def _kind(dims: tuple) -> tuple[str, str]:
    """(kind, task) guessed from the input's rank and channels."""
    if len(dims) == 4:
        channels = dims[1] if guess_layout(dims) == "NCHW" else dims[3]
        return ("rgb_image", "morphology") if channels == 3 else ("mono_image", "lens")
    return "spectrum", "redshift"


def starter_output_name(i: int) -> str:
    """The placeholder name of the ``i``-th output in a starter card (``models check``
    warns while any is left)."""
    return f"out_{i}"


def starter_card(onnx: Path, name: str | None = None) -> str:
    """The card's TOML text (with comments) for ``onnx``."""
    session = open_session(str(onnx))
    sig = signature(session)
    if sig.n_inputs != 1:
        raise CardError(f"{onnx}: the graph has {sig.n_inputs} inputs; astrocat feeds one")
    if any(not isinstance(d, int) for d in sig.input_dims[1:]):
        raise CardError(f"{onnx}: the input shape {list(sig.input_dims)} has dynamic axes "
                        "besides the batch; export it with a fixed item size")
    item = list(sig.input_dims[1:])
    kind, task = _kind(sig.input_dims)
    if name is None:
        name = onnx.resolve().parent.name if onnx.stem == "model" else onnx.stem
    lines = [
        f"# Starter card written by `astrocat models init {onnx.name}`: edit what the comments",
        "# ask, then run `astrocat models check` on it.",
        f'name = "{name}"  # the catalog\'s `model` column',
        'version = "0.1.0"',
        f'task = "{task}"  # {" | ".join(TASKS)}',
        'description = ""',
        "",
        "[input]",
        f'kind = "{kind}"  # rgb_image (JPEG/PNG) | mono_image (FITS) | density_field | '
        "spectrum",
    ]
    if kind != "spectrum":
        lines.append(f'layout = "{guess_layout(sig.input_dims)}"  # read from the graph '
                     f"{fmt_dims(sig.input_dims)}: NCHW is channels first, NHWC channels last")
    lines += [
        f"shape = {item}  # the graph's input without the batch axis",
        f'preprocessing = "{"scale_255" if kind == "rgb_image" else "standardize"}"  '
        f"# {' | '.join(PREPROCESSINGS)}",
        "mean = 0.0  # one value, or one per channel (ImageNet: [0.485, 0.456, 0.406])",
        "std = 1.0  # one value, or one per channel (ImageNet: [0.229, 0.224, 0.225])",
    ]
    if kind == "rgb_image":
        lines += [
            "crop_fraction = 1.0  # centre crop of the shorter side; fractional crops are exact",
            "zoom = 1.0  # then the central 1/zoom of that crop (Zoobot-style zoom 1.2)",
            f'resize_filter = "bilinear"  # {" | ".join(RESIZE_FILTERS)}',
            "antialias = true  # as Pillow and torchvision antialias=True; false as TF's resize",
        ]
    lines += ["", "[files]", f'onnx = "{onnx.name}"', "", "[sha256]",
              f'onnx = "{sha256_file(onnx)}"', "",
              f"# one table per output value, in the graph's order ({sig.output_name} "
              f"{fmt_dims(sig.output_dims)}): name them; they become catalog columns"]
    for i in range(n_outputs(session, sig, tuple(item))):
        lines += ["[[outputs]]", f'name = "{starter_output_name(i)}"', 'unit = ""',
                  'description = ""', ""]
    return "\n".join(lines)


def init_card(onnx: Path, out: Path | None = None, force: bool = False) -> Path:
    """Write the starter card (beside the model by default) and check that it parses."""
    onnx = Path(onnx)
    if not onnx.is_file():
        raise CardError(f"no ONNX file at {onnx}")
    out = Path(out) if out else onnx.parent / CARD_FILENAME
    if out.exists() and not force:
        raise CardError(f"{out} exists; pass --force to overwrite it or --out for another name")
    text = starter_card(onnx)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    try:
        load_card(tmp)  # a starter card must itself be valid
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
