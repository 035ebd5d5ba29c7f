"""The ``sam2-fast batch`` manifest: reading and checking it (:func:`load_manifest`).

One JSON object per line, described by ``sam2_fast/schemas/batch_manifest.schema.json``
(:data:`SCHEMA_PATH`, shipped in the package), which validates the structure (jsonschema-rs);
the checks a schema cannot make follow in :func:`_check_line`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "batch_manifest.schema.json"

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class VideoJob:
    """One valid manifest line, paths made absolute.

    Attributes:
        line: 1-based line number in the manifest.
        id: the output folder name under ``out``.
        video: absolute path of the video file or frame folder.
        prompts: ``"auto"``, or ``{frame_index: {obj_id: prompt}}`` where a prompt is
            ``{"points": [[x, y], ...] (pixels), "labels": [1/0, ...], "box": [x0, y0, x1, y1]
            (pixels)}`` or ``{"mask": absolute path, "mask_value": int | None}``.
        model: a published model name or an absolute checkpoint path; None = the batch's.
        image_size: model input side (pixels) for this video; None = the batch's.
        max_frames: track at most this many frames from the first prompted one; None = all.
        max_objects: with ``"auto"``: at most this many objects; None = the engine's default.
        amg: with ``"auto"``: the automatic mask generator's keyword arguments (checked); None =
            its defaults.
    """

    line: int
    id: str
    video: str
    prompts: Union[str, Dict[int, Dict[int, dict]]]
    model: Optional[str] = None
    image_size: Optional[int] = None
    max_frames: Optional[int] = None
    max_objects: Optional[int] = None
    amg: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class ManifestError:
    """A bad manifest line: ``line`` (1-based), the ``id`` when it could be read, the message."""

    line: int
    message: str
    id: Optional[str] = None

    def __str__(self) -> str:
        who = f" (id {self.id!r})" if self.id is not None else ""
        return f"line {self.line}{who}: {self.message}"


class ManifestInvalid(ValueError):
    """Raised by :func:`run_batch` when lines are bad and ``skip_invalid`` is False (nothing
    ran). ``errors`` lists every bad line."""

    def __init__(self, errors: Sequence[ManifestError], source: str = "manifest") -> None:
        self.errors = list(errors)
        self.source = source
        first = self.errors[0] if self.errors else "no error"
        super().__init__(f"{len(self.errors)} invalid line(s) in {source}, first: {first}")


def auto_prompts_supported() -> bool:
    """True when this build's :meth:`sam2_fast.Sam2.track` takes ``prompts="auto"`` (it then
    has a ``max_objects`` argument)."""
    from ..api import Sam2

    return "max_objects" in inspect.signature(Sam2.track).parameters


_SCHEMA_VALIDATOR = None


def _validator():
    """The compiled schema (jsonschema-rs: a few microseconds per line, so a 100,000-line
    manifest is checked in well under a second of schema time)."""
    global _SCHEMA_VALIDATOR
    if _SCHEMA_VALIDATOR is None:
        import jsonschema_rs

        _SCHEMA_VALIDATOR = jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    return _SCHEMA_VALIDATOR


def _where(path: Sequence[Any]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _schema_at(path: Sequence[Any]) -> Any:
    node = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    for p in path:
        node = node[p]
    return node


def _schema_message(err) -> str:
    """A readable message for one schema error (descending into the anyOf of ``prompts``)."""
    path = list(err.instance_path)
    spath = [str(p) for p in err.schema_path]
    kind = type(err.kind).__name__
    inst = err.instance
    if kind == "AnyOf" and path == ["prompts"]:
        if not isinstance(inst, dict):
            return f"/prompts: must be \"auto\" or {{\"<frame>\": {{\"<obj_id>\": prompt}}}}, got {json.dumps(inst)}"
        branch = err.kind.context[1] if len(err.kind.context) > 1 else []
        return _schema_message(branch[0]) if branch else f"/prompts: {err.message}"
    if kind == "AnyOf" and len(path) == 3 and path[0] == "prompts":
        return f"{_where(path)}: give points, a box or a mask"
    if kind == "Not" and path == ["id"]:
        return f"/id: {inst!r} is reserved for the batch's own files (status..., summary..., *.partial-*)"
    if kind == "Not":
        return f"{_where(path)}: a mask cannot be combined with points or a box"
    if "propertyNames" in spath and isinstance(inst, dict):
        pattern = _schema_at(spath[:spath.index("propertyNames") + 1])["pattern"]
        key = json.dumps(next((k for k in inst if not re.fullmatch(pattern, k)), "?"))
        if len(path) == 1:
            return f"/prompts: frame key {key} must be a frame index (0, 1, 2, ...)"
        return f"{_where(path)}: object id {key} must be an integer 1..255"
    if kind == "Pattern" and path == ["id"]:
        return (f"/id: {inst!r} must be letters, digits, '_', '-', '.', not starting with '.' or "
                f"'-', at most 200 characters")
    if "dependentSchemas" in spath:  # the key whose schema failed follows in the schema path
        key = spath[spath.index("dependentSchemas") + 1]
        return f"/{key}: goes with prompts \"auto\" only"
    return f"{_where(path)}: {err.message}" if path else err.message


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _resolve(base: Path, p: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(p)))  # os.path: 5x pathlib's speed


def resolve_model(model: str, base: Path) -> str:
    """A manifest/CLI model string -> an absolute checkpoint path when that file exists, else
    the canonical published name. Raises ValueError naming both readings when it is neither."""
    from .. import hub

    path = _resolve(base, model)
    if os.path.isfile(path):
        return path
    try:
        return hub.canonical_name(model)
    except hub.HubError:
        raise ValueError(f"model {model!r} is neither a checkpoint file ({path} not found) nor a "
                         f"published name ({', '.join(hub.MODEL_URLS)})") from None


def _check_line(obj: dict, base: Path, default_model: Optional[str]) -> VideoJob:
    """Semantic checks of one schema-valid line -> VideoJob. Raises ValueError."""
    video = _resolve(base, obj["video"])
    if not os.path.exists(video):
        raise ValueError(f"/video: {video} does not exist")
    prompts: Union[str, Dict[int, Dict[int, dict]]]
    if obj["prompts"] == "auto":
        if not auto_prompts_supported():
            raise ValueError("/prompts: \"auto\" needs Sam2.track(prompts=\"auto\"), which this "
                             "build of sam2_fast does not have")
        prompts = "auto"
    else:
        prompts = {}
        for fkey, objs in obj["prompts"].items():
            frame = int(fkey)
            prompts[frame] = {}
            for okey, p in objs.items():
                where = f"/prompts/{fkey}/{okey}"
                q: dict = {}
                if "mask" in p:
                    mpath = _resolve(base, p["mask"])
                    if not os.path.isfile(mpath):
                        raise ValueError(f"{where}/mask: {mpath} does not exist")
                    q = {"mask": mpath, "mask_value": p.get("mask_value")}
                if "points" in p:
                    labels = p.get("labels", [1] * len(p["points"]))
                    if len(labels) != len(p["points"]):
                        raise ValueError(f"{where}: {len(p['points'])} points but {len(labels)} labels")
                    q["points"] = [[float(v) for v in xy] for xy in p["points"]]
                    q["labels"] = [int(v) for v in labels]
                if "box" in p:
                    x0, y0, x1, y1 = (float(v) for v in p["box"])
                    if x1 < x0 or y1 < y0:
                        raise ValueError(f"{where}/box: need x1 >= x0 and y1 >= y0, got {p['box']}")
                    q["box"] = [x0, y0, x1, y1]
                prompts[frame][int(okey)] = q
        frames = sorted(prompts)
        mf = obj.get("max_frames")
        if mf is not None and frames[-1] - frames[0] >= mf:
            raise ValueError(f"/prompts: frame {frames[-1]} is outside the tracked frames "
                             f"{frames[0]}..{frames[0] + mf - 1} (max_frames {mf} from the first "
                             f"prompted frame {frames[0]})")
    model = None
    if obj.get("model") is not None:
        model = resolve_model(obj["model"], base)
    elif default_model is None:
        raise ValueError("no model: give the batch a model (--checkpoint / --model) or the line a "
                         "\"model\"")
    amg = obj.get("amg")
    if amg is not None:
        from ..predictors.automatic_mask_generator import check_generator_args

        try:
            check_generator_args(**amg)  # ranges the schema cannot say (grids, OpenCV present)
        except ValueError as e:
            raise ValueError(f"/amg: {e}") from None
    return VideoJob(0, obj["id"], video, prompts, model, obj.get("image_size"),
                    obj.get("max_frames"), obj.get("max_objects"), amg)


def load_manifest(manifest: Union[PathLike, Iterable[Union[dict, str]]], *,
                  default_model: Optional[str] = None, base_dir: Optional[PathLike] = None
                  ) -> Tuple[List[VideoJob], List[ManifestError]]:
    """Read and check a manifest; nothing is run or written.

    Args:
        manifest: a JSON-lines file, or an iterable of lines (JSON strings or dicts; line i of
            the iterable is line i + 1).
        default_model: the batch's model; when None every line must name its ``model``.
        base_dir: folder that relative paths are relative to (default: the manifest file's
            folder, or the current folder for an iterable).

    Returns:
        (valid jobs in manifest order, one :class:`ManifestError` per bad line). A line is bad
        when it is not JSON, not an object, breaks the schema (:data:`SCHEMA_PATH`), repeats an
        id (also ignoring case), names a missing video/mask file or an unknown model, prompts a
        frame outside its ``max_frames`` range, asks for ``"auto"`` where the engine lacks it,
        or has no model. Blank lines are skipped.

    Raises:
        OSError: the manifest file cannot be read.
    """
    if isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        base = Path(base_dir) if base_dir is not None else path.absolute().parent
        with open(path, encoding="utf-8") as f:
            lines: List[Union[dict, str]] = f.read().splitlines()
    else:
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        lines = list(manifest)
    validator = _validator()
    jobs: List[VideoJob] = []
    errors: List[ManifestError] = []
    seen: Dict[str, Tuple[int, str]] = {}
    for n, raw in enumerate(lines, start=1):
        if isinstance(raw, str):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw, parse_constant=_reject_constant)
            except ValueError as e:
                errors.append(ManifestError(n, f"not valid JSON: {e}"))
                continue
        else:
            try:  # a dict as its JSON text would read: int keys ({0: ...}) become "0"
                obj = json.loads(json.dumps(raw, allow_nan=False))
            except (TypeError, ValueError) as e:
                errors.append(ManifestError(n, f"not JSON-serializable: {e}"))
                continue
        if not isinstance(obj, dict):
            errors.append(ManifestError(n, f"must be a JSON object, got {type(obj).__name__}"))
            continue
        oid = obj.get("id") if isinstance(obj.get("id"), str) else None
        err = None if validator.is_valid(obj) else next(iter(validator.iter_errors(obj)))
        if err is not None:
            errors.append(ManifestError(n, _schema_message(err), oid))
            continue
        key = oid.casefold()
        if key in seen:
            ln, other = seen[key]
            same = "" if other == oid else f" ({other!r}: ids must differ beyond letter case)"
            errors.append(ManifestError(n, f"/id: {oid!r} repeats line {ln}{same}", oid))
            continue
        seen[key] = (n, oid)
        try:
            job = _check_line(obj, base, default_model)
        except ValueError as e:
            errors.append(ManifestError(n, str(e), oid))
            continue
        jobs.append(dataclasses.replace(job, line=n))
    return jobs, errors
