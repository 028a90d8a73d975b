"""Records searches in MLflow. The only package that imports MLflow: `tracker` (a search
as a parent run and its trials as child runs, the registry), `writer` (trial events
written off Tune's event loop, retried), `plots` (figures logged with runs), `uri` (which
store, without importing MLflow, and the environment MLflow reads).

Importing the package sets that environment, so it is in place before any of its
modules imports MLflow (`search.tracking.reader` imports MLflow before the tracker).
"""

from search.tracking.uri import set_mlflow_environment

set_mlflow_environment()
