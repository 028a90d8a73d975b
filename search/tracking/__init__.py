"""Records searches in MLflow. The only package that imports MLflow: `tracker` (a search
as a parent run and its trials as child runs, the registry), `writer` (trial events
written off Tune's event loop, retried), `plots` (figures logged with runs), `uri` (which
store, without importing MLflow).
"""
