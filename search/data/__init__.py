"""Image data for a search: readers for each kind of source (`sources`), and the checks
and splits that turn what they read into a `Dataset` (`dataset`)."""

from search.data.dataset import DEFAULT_DATA, Dataset, load_dataset, split_dataset

__all__ = ["DEFAULT_DATA", "Dataset", "load_dataset", "split_dataset"]
