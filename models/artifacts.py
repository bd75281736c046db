"""Model artifacts on disk, each recorded with a sha256 that a load must match.

Why a checksum: an artifact is loaded by a worker that did not write it, possibly weeks later (the
fallback to a previous version); a truncated copy or a file swapped on the shared volume must be
refused, not silently used to forecast. The digest covers every file of the artifact directory
(relative path and bytes, in sorted order), so adding, removing or editing any file changes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from core.units import ModelRecord, Scope
from models.base import SavedModel
from models.blend import LGBMProphetBlend, MeanEnsemble
from models.intervals import ConformalIntervals
from models.lgbm import GlobalLGBM, PlainLagLGBM
from models.prophet_model import ProphetPerSeries
from models.seasonal import SeasonalAverage, SeasonalNaive
from models.topdown import LGBMTopDownBlend, TopDown

# Every class a demand artifact may hold (the previous-model fallback loads any of them).
MODEL_CLASSES = {
    cls.name: cls for cls in (SeasonalNaive, SeasonalAverage, GlobalLGBM, PlainLagLGBM, ProphetPerSeries,
                               LGBMProphetBlend, TopDown, LGBMTopDownBlend, MeanEnsemble)
}
MeanEnsemble.part_classes = MODEL_CLASSES  # an ensemble's parts load through the same table
INTERVALS_FILE = "intervals.json"
M = TypeVar("M", bound=SavedModel)


class ArtifactChecksumError(RuntimeError):
    """The artifact on disk is not the one the registry recorded; it must not be loaded."""


def directory_sha256(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def save_artifact(model: SavedModel, intervals: ConformalIntervals | None, directory: Path) -> str:
    """Write the model (and its calibrated intervals) into ``directory``; returns the sha256.

    The directory is written fresh: leftovers of an earlier attempt would change the digest.
    """
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    model.save(directory)
    if intervals is not None:
        intervals.save(directory / INTERVALS_FILE)
    return directory_sha256(directory)


def saved_record(model: SavedModel, directory: Path, *, name: str, version: str,
                 training_start: datetime | None, training_end: datetime | None, metrics: dict[str, Any],
                 params: dict[str, Any] | None = None, intervals: ConformalIntervals | None = None) -> ModelRecord:
    """Save ``model`` into ``directory`` and describe it for the registry, sha256 included.

    Args:
        training_start, training_end: the span of history the model learnt from (UTC datetimes).
        metrics, params: JSON-safe dicts the registry keeps beside the artifact.
    """
    sha = save_artifact(model, intervals, directory)
    return ModelRecord(name=name, version=version, artifact_path=str(directory), sha256=sha,
                       training_start=training_start, training_end=training_end, metrics=metrics,
                       params=params or {})


def verify_artifact(directory: Path, sha256: str) -> Path:
    """Check ``directory`` against the registry's digest before anything in it is read.

    Raises ArtifactChecksumError when the files do not match ``sha256``, FileNotFoundError when
    the artifact is gone.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"artifact {directory} does not exist")
    actual = directory_sha256(directory)
    if actual != sha256:
        raise ArtifactChecksumError(f"artifact {directory}: sha256 {actual} does not match the registry's {sha256}")
    return directory


def load_model(cls: type[M], directory: Path, sha256: str) -> M:
    """Load a model of class ``cls`` (any class with the ``load(dir)`` interface), checksum first."""
    return cls.load(verify_artifact(directory, sha256))


def shard_key(scope: Scope) -> str:
    """A short hash of the shard's restaurants: the last part of every registry version, so a
    later run finds the models this shard registered (and never another shard's)."""
    key = ",".join(str(i) for i in sorted(scope.restaurant_ids))
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def shard_version(prefix: str, scope: Scope, *, as_of_format: str = "%Y%m%d") -> str:
    """A registry version unique per run and shard: prefix, as-of, run id, hash of the restaurants.

    The one version helper of every model type. The registry key is (name, version) and shards of
    one run fit separate models, so the restaurants of the shard are part of the version.
    ``as_of_format``: the as-of's ``strftime`` format (the demand types keep the minute,
    ``"%Y%m%dT%H%M"``).
    """
    return f"{prefix}.{scope.as_of.strftime(as_of_format)}.{str(scope.run_id)[:8]}.{shard_key(scope)}"


def previous_records(scope: Scope, prediction_type: str, name: str) -> pd.DataFrame:
    """Registered models of this type and name for the same shard, newest first.

    Same shard: the version ends with the hash of the shard's restaurants (``shard_version``),
    so a model trained on other restaurants' data is never borrowed (churn, LTV and prep time
    reuse or fall back on these). Models of the current run, retired ones and any trained on data
    after this run's as-of (a replay of an older day) are left out.
    """
    reg = scope.registry
    if reg is None or reg.empty:
        return pd.DataFrame()
    shard = shard_key(scope)
    rows = reg[(reg["prediction_type"] == prediction_type) & (reg["name"] == name)]
    version = rows["version"].astype(str)
    rows = rows[version.str.endswith("." + shard) & ~version.str.contains(str(scope.run_id)[:8], regex=False)]
    if "status" in rows:
        rows = rows[rows["status"].isin(["active", "candidate"])]
    if "training_end" in rows and len(rows):
        end = pd.to_datetime(rows["training_end"], utc=True)
        rows = rows[end.isna() | (end <= scope.as_of)]
    if "created_at" in rows and len(rows):
        rows = rows.sort_values("created_at", ascending=False)
    return rows


def load_artifact(directory: Path, sha256: str) -> tuple[SavedModel, ConformalIntervals | None]:
    """The demand model and intervals saved in ``directory``, after checking its digest."""
    directory = verify_artifact(directory, sha256)
    name = json.loads((directory / "params.json").read_text())["class"]
    model = MODEL_CLASSES[name].load(directory)
    path = directory / INTERVALS_FILE
    intervals = ConformalIntervals.load(path) if path.exists() else None
    return model, intervals


def saved_model(model: SavedModel, scope: Scope, prediction_type: str, *, training_start: pd.Timestamp | datetime,
                metrics: dict[str, Any]) -> ModelRecord:
    """Save a model fitted for one shard under the model store and describe it for the registry.

    One artifact and one registry version per (type, run, shard): the registry is keyed on name +
    version, so a constant version would leave only the last shard's model registered.

    Args:
        training_start: the start of the history it learnt from (UTC); it learnt up to the as-of.
    """
    version = shard_version(prediction_type, scope)
    return saved_record(
        model, scope.model_store / prediction_type / version, name=model.name, version=version,
        training_start=pd.Timestamp(training_start).to_pydatetime(), training_end=scope.as_of.to_pydatetime(),
        metrics=metrics,
    )
