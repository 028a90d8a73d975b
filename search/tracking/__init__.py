"""Records searches in MLflow. The only package that imports MLflow."""

from search.tracking.tracker import (
    CHAMPION_ALIAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    TAG_ERROR,
    TAG_ROLE,
    TAG_STATUS,
    RegisteredModel,
    SearchTracker,
    resolve_tracking_uri,
    using_tracking_store,
)

__all__ = ["CHAMPION_ALIAS", "DEFAULT_EXPERIMENT", "DEFAULT_TRACKING_URI", "TAG_ERROR",
           "TAG_ROLE", "TAG_STATUS", "RegisteredModel", "SearchTracker",
           "resolve_tracking_uri", "using_tracking_store"]
