"""Runs a search's trials on Ray Tune, and resumes them. The only package that imports
Ray: `tuner` (run or resume a search), `trainable` (one trial in a worker), `searchers`
(who proposes configs), `stopping` (schedulers and budgets), `callbacks` (Tune events to
observers), `control` (the driver's handle on a running search), `signals` (clean stops),
`experiment` (the search's folder, request record and driver lock), `resources`.
"""
