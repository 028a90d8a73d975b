"""Long-running services a team runs beside its searches: the tracking server."""
