"""`SearchRequest`: everything that defines one search, in a form that the CLI builds from
its flags, a Ray Job or a schedule builds from its own input, and a search records in its
folder so that ``--resume NAME`` can rebuild it without any flag.

Plain data: no TensorFlow, Ray or MLflow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from search.champion import PromotionPolicy
from search.data import DEFAULT_DATA
from search.secrets import redacted, redacted_webhook
from search.settings import SearchSettings
from search.space import DEFAULT_SPACE

#: Version of the recorded form; a record of another version is refused, not guessed at.
RECORD_VERSION = 1


@dataclass(frozen=True)
class DataRequest:
    """Which data a search runs on, as ``--data`` and its companion flags say."""

    source: str = DEFAULT_DATA
    #: Use only this many examples in all (stratified), for quick runs.
    limit: int | None = None
    #: Resize an image folder's images to (height, width).
    image_size: tuple[int, int] | None = None
    color_mode: str = "rgb"


@dataclass(frozen=True)
class SearchRequest:
    """One search: what to search, on which data, how, and where it is recorded."""

    #: A space file, or the name of a shipped space.
    space: str = DEFAULT_SPACE
    #: The space file's text, once recorded (a resumed search uses it, not the file).
    space_text: str | None = None
    data: DataRequest = field(default_factory=DataRequest)
    settings: SearchSettings = field(default_factory=SearchSettings)
    #: MLflow tracking URI; None: $MLFLOW_TRACKING_URI, else the local default.
    tracking_uri: str | None = None
    #: MLflow experiment; None: the default one.
    experiment: str | None = None
    #: Registry name of the best model; None: ``convsearch-<data name>``.
    model_name: str | None = None
    #: Digest of the data the search started on (`Dataset.fingerprint`), once recorded.
    data_fingerprint: str | None = None
    #: When this search's best model takes the champion alias from the registered one.
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)
    #: A webhook told (Slack-style JSON) when the search finishes, fails or is stopped.
    notify: str | None = None
    #: An earlier search of the same space (or "latest") whose best configs this one
    #: tries first.
    warm_start: str | None = None

    def to_record(self) -> dict[str, Any]:
        """JSON-able form of the request, read back by `from_record`."""
        record = dataclasses.asdict(self)
        record["settings"] = self.settings.to_record()
        # Secrets stay out of the record (it lies on shared storage): a database URI's
        # password is masked, so a resumed search is given --tracking-uri again, and a
        # webhook is kept only as where it went, so it is given --notify again.
        if self.tracking_uri is not None:
            record["tracking_uri"] = redacted(self.tracking_uri)
        if self.notify is not None:
            record["notify"] = redacted_webhook(self.notify)
        record["version"] = RECORD_VERSION
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SearchRequest:
        """The request `to_record` wrote.

        Raises:
            ValueError: the record is of another version or malformed.
        """
        if record.get("version") != RECORD_VERSION:
            raise ValueError(f"record version {record.get('version')!r}, expected "
                             f"{RECORD_VERSION}")
        data = dict(record["data"])
        if data.get("image_size") is not None:
            data["image_size"] = tuple(data["image_size"])
        return cls(space=record["space"], space_text=record["space_text"],
                   data=DataRequest(**data),
                   settings=SearchSettings.from_record(record["settings"]),
                   tracking_uri=record["tracking_uri"], experiment=record["experiment"],
                   model_name=record["model_name"],
                   data_fingerprint=record["data_fingerprint"],
                   promotion=PromotionPolicy(**record.get("promotion") or {}),
                   notify=None, warm_start=record.get("warm_start"))
