"""Splits of the shapes dataset on disk: generate, verify, and the cache that keeps them.

A split directory looks like::

    <split_dir>/images/000000.png ...
    <split_dir>/annotations.json   # COCO, annotations from .coco.mask_annotation
    <split_dir>/manifest.json      # written last: settings, size and sha256 of every file

:func:`ensure_split` generates a split into a temporary directory next to ``split_dir`` and
renames it into place, so an interrupted run never leaves a directory that passes
:func:`verify_split`; a missing, truncated or stale split is regenerated.
"""
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional

import cv2

from .coco import coco_categories, mask_annotation, write_coco_json
from .render import GENERATOR_VERSION, ShapesConfig, render_image

__all__ = ["generate_split", "verify_split", "ensure_split"]

logger = logging.getLogger(__name__)

_ANNOTATIONS = "annotations.json"
_MANIFEST = "manifest.json"
_IMAGES = "images"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate_split(out_dir: str, cfg: ShapesConfig, progress: bool = True, desc: str = "") -> Dict[str, Any]:
    """Write images, ``annotations.json`` and (last) ``manifest.json`` of a split into ``out_dir``.

    Not atomic by itself: use :func:`ensure_split` for the cache. Returns the COCO dict.
    """
    from tqdm import tqdm

    os.makedirs(os.path.join(out_dir, _IMAGES), exist_ok=True)
    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    files: Dict[str, Dict[str, Any]] = {}
    h, w = cfg.image_size
    for i in tqdm(range(cfg.num_images), desc=desc or "solo_shapes", unit="img", disable=not progress):
        image, instances = render_image(i, cfg)
        file_name = f"{i:06d}.png"
        path = os.path.join(out_dir, _IMAGES, file_name)
        ok, buf = cv2.imencode(".png", image)
        if not ok:  # pragma: no cover
            raise RuntimeError(f"cv2 could not encode {path} as PNG")
        data = buf.tobytes()
        with open(path, "wb") as f:
            f.write(data)
        files[f"{_IMAGES}/{file_name}"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
        for category_id, mask in instances:
            ann = mask_annotation(mask, category_id, image_id=i + 1, ann_id=len(annotations) + 1)
            if ann is not None:
                annotations.append(ann)
    coco = {
        "info": {
            "description": "solo_d2 procedural shapes",
            "version": str(GENERATOR_VERSION),
            "config": cfg.to_dict(),
        },
        "licenses": [],
        "categories": coco_categories(cfg.classes),
        "images": images,
        "annotations": annotations,
    }
    ann_path = os.path.join(out_dir, _ANNOTATIONS)
    write_coco_json(ann_path, coco)
    files[_ANNOTATIONS] = {"size": os.path.getsize(ann_path), "sha256": _sha256(ann_path)}
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "config": cfg.to_dict(),
        "num_images": len(images),
        "num_annotations": len(annotations),
        "files": files,
    }
    with open(os.path.join(out_dir, _MANIFEST), "w") as f:
        f.write(json.dumps(manifest, sort_keys=True))
    return coco


def verify_split(split_dir: str, cfg: ShapesConfig, deep: bool = False) -> bool:
    """Whether ``split_dir`` holds a complete split generated with ``cfg`` by this generator.

    Checks the manifest (generator version and settings), that every listed file exists with
    its recorded size, and the sha256 of ``annotations.json``. ``deep=True`` also checks the
    sha256 of every image. Never raises for a broken directory; returns False.
    """
    try:
        with open(os.path.join(split_dir, _MANIFEST)) as f:
            manifest = json.load(f)
        if manifest.get("generator_version") != GENERATOR_VERSION:
            return False
        if manifest.get("config") != cfg.to_dict():
            return False
        files = manifest["files"]
        if len([k for k in files if k.startswith(_IMAGES + "/")]) != cfg.num_images:
            return False
        if _ANNOTATIONS not in files:
            return False
        for rel, info in files.items():
            if os.path.getsize(os.path.join(split_dir, rel)) != info["size"]:
                return False
        for rel, info in files.items():
            if (deep or rel == _ANNOTATIONS) and _sha256(os.path.join(split_dir, rel)) != info["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Exclusive advisory lock (POSIX fcntl; a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_split(split_dir: str, cfg: ShapesConfig, progress: bool = True, desc: str = "",
                 generate: Callable[..., Any] = generate_split) -> str:
    """Make sure ``split_dir`` holds a valid split for ``cfg``; (re)generate it if not, with
    ``generate(out_dir, cfg, progress=, desc=)`` (the panoptic split's writer gives its own).

    Generation goes to a temporary sibling directory that is renamed into place once
    complete (the manifest is its last file), under a file lock so that concurrent processes
    (e.g. one per GPU) generate it once. Returns ``split_dir``.
    """
    split_dir = os.path.abspath(split_dir)
    if verify_split(split_dir, cfg):
        return split_dir
    parent, base = os.path.split(split_dir)
    os.makedirs(parent, exist_ok=True)
    with _file_lock(os.path.join(parent, f".{base}.lock")):
        if verify_split(split_dir, cfg):
            return split_dir
        if os.path.exists(split_dir):
            logger.warning(f"{split_dir} is incomplete, corrupt or stale; regenerating it.")
        logger.info(f"Generating {cfg.num_images} images into {split_dir} ...")
        tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the cache may be shared
            generate(tmp, cfg, progress=progress, desc=desc or base)
            old: Optional[str] = None
            if os.path.lexists(split_dir):
                old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
                os.rename(split_dir, os.path.join(old, base))
            os.rename(tmp, split_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return split_dir
