"""Feature preparation: the 41 KDD columns -> one numeric matrix for the K-means ensemble.

Choices (all made by validation on KDDTrain+ splits, see docs/MODEL.md):
- heavy-tailed counts (every numeric column whose training maximum exceeds 1: bytes,
  durations, counts) go through log1p, so one 10 MB transfer does not dwarf every other feature;
- numeric columns are standardised on normal training traffic, with a floor on the standard
  deviation (near-constant columns such as ``root_shell`` would otherwise turn a single 1 into a
  huge distance) and clipped to +-``clip`` standard deviations;
- protocol_type, service and flag are one-hot encoded against the vocabulary seen in training,
  scaled by ``categorical_weight``. An unseen category encodes as all zeros in its block: it is
  as far from every centroid as any unknown value can be, and it never borrows the code of
  another category (as a LabelEncoder re-fitted on each upload would).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from utils.readers import FeatureArrays
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES


class KDDFeatureTransformer(TransformerMixin, BaseEstimator):
    """Turn a DataFrame with the 41 KDD feature columns into a float32 matrix."""

    def __init__(
        self, *, clip: float = 5.0, std_floor: float = 0.05, categorical_weight: float = 2.0
    ) -> None:
        self.clip = clip
        self.std_floor = std_floor
        self.categorical_weight = categorical_weight

    def fit(self, X: pd.DataFrame, y: object = None) -> KDDFeatureTransformer:
        X = _check_frame(X)
        numeric = X.loc[:, list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
        self.log_mask_ = numeric.max(axis=0) > 1.0
        logged = self._log(numeric)
        self.mean_ = logged.mean(axis=0)
        self.scale_ = np.maximum(logged.std(axis=0), self.std_floor)
        self.categories_ = {
            name: np.array(sorted(X[name].astype(str).unique()), dtype=object)
            for name in CATEGORICAL_FEATURES
        }
        self.feature_names_in_ = np.array(FEATURE_NAMES, dtype=object)
        self.n_features_in_ = len(FEATURE_NAMES)
        self.n_numeric_ = len(NUMERIC_FEATURES)
        out_names = list(NUMERIC_FEATURES)
        sources = list(NUMERIC_FEATURES)
        for name in CATEGORICAL_FEATURES:
            out_names += [f"{name}={value}" for value in self.categories_[name]]
            sources += [name] * len(self.categories_[name])
        self.output_feature_names_ = np.array(out_names, dtype=object)
        # which input feature each output column comes from (explanations group by it)
        self.output_sources_ = np.array(sources, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "mean_")
        X = _check_frame(X)
        numeric = X.loc[:, list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
        codes = {name: self._lookup(name, X[name].to_numpy(dtype=object))
                 for name in CATEGORICAL_FEATURES}
        return self._encode(numeric, codes)

    def transform_arrays(self, arrays: FeatureArrays) -> np.ndarray:
        """``transform`` of the records the reader gave as ``arrays``: the same matrix, bit for
        bit, without a text lookup per row (each distinct value is looked up once)."""
        check_is_fitted(self, "mean_")
        codes = {name: self._lookup(name, arrays.values[name])[arrays.codes[name]]
                 for name in CATEGORICAL_FEATURES}
        return self._encode(arrays.numeric, codes)

    def _encode(self, numeric: np.ndarray, codes: dict[str, np.ndarray]) -> np.ndarray:
        """The model's matrix from the numeric columns (left unchanged) and each categorical's
        vocabulary codes (-1: unseen).

        Column by column, through one scratch column: no float64 copy of the whole matrix.
        """
        numeric = np.asfortranarray(numeric)  # contiguous columns (the reader's layout)
        out = np.zeros((len(numeric), len(self.output_feature_names_)), dtype=np.float32)
        column = np.empty(len(numeric), dtype=np.float64)
        # a value near the float64 limit in a column without log1p overflows to inf here; the
        # clip below makes it +clip like any other extreme value, so the warning is noise
        with np.errstate(over="ignore"):
            for j in range(self.n_numeric_):
                if self.log_mask_[j]:
                    np.maximum(numeric[:, j], 0.0, out=column)
                    np.log1p(column, out=column)
                    np.subtract(column, self.mean_[j], out=column)
                else:
                    np.subtract(numeric[:, j], self.mean_[j], out=column)
                np.divide(column, self.scale_[j], out=column)
                np.clip(column, -self.clip, self.clip, out=column)
                out[:, j] = column
        start = self.n_numeric_
        rows = np.arange(len(numeric))
        for name in CATEGORICAL_FEATURES:
            known = codes[name] >= 0
            out[rows[known], start + codes[name][known]] = self.categorical_weight
            start += len(self.categories_[name])
        return out

    def unseen_categories(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Boolean mask per categorical column: values never seen in training."""
        check_is_fitted(self, "mean_")
        return {name: self._lookup(name, X[name].to_numpy(dtype=object)) < 0
                for name in CATEGORICAL_FEATURES}

    def _lookup(self, name: str, values: np.ndarray) -> np.ndarray:
        """Index of each value in the vocabulary of ``name``, -1 where it is not in it."""
        index = self._vocabulary_index.get(name)
        if index is None:  # built once per process (a race only builds it twice)
            # object dtype: an inferred string dtype would convert ``values`` on every call
            index = pd.Index(self.categories_[name], dtype=object)
            self._vocabulary_index[name] = index
        # the values as an object Index too: pandas would otherwise infer a string dtype and
        # convert them to Arrow on every call (0.13 against 0.03 ms for 500 values)
        return index.get_indexer(pd.Index(values, dtype=object, copy=False))

    @property
    def _vocabulary_index(self) -> dict[str, pd.Index]:
        cache = self.__dict__.get("_vocabulary_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_vocabulary_cache", {})
        return cache

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_vocabulary_cache", None)  # derived from categories_
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "mean_")
        return self.output_feature_names_

    def _log(self, numeric: np.ndarray) -> np.ndarray:
        logged = numeric.copy()
        logged[:, self.log_mask_] = np.log1p(np.maximum(logged[:, self.log_mask_], 0.0))
        return logged


def _check_frame(X: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with the 41 KDD columns, got {type(X)!r}")
    missing = [name for name in FEATURE_NAMES if name not in X.columns]
    if missing:
        raise ValueError(f"expected 41 KDD feature columns, missing {missing[:5]}")
    return X
