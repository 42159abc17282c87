import warnings

import numpy as np
import pandas as pd
import pytest

from utils.features import KDDFeatureTransformer
from utils.readers import read_records
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES


def frame(n: int = 50, seed: int = 0, **overrides) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    data = {name: rng.randint(0, 3, size=n).astype(float) for name in NUMERIC_FEATURES}
    data["src_bytes"] = rng.randint(0, 10_000, size=n).astype(float)
    data["protocol_type"] = rng.choice(["tcp", "udp", "icmp"], size=n)
    data["service"] = rng.choice(["http", "smtp", "private"], size=n)
    data["flag"] = rng.choice(["SF", "S0"], size=n)
    data.update(overrides)
    return pd.DataFrame(data)[list(FEATURE_NAMES)]


def test_vocabularies_are_learned_at_fit_and_stored():
    t = KDDFeatureTransformer().fit(frame())
    assert list(t.categories_["protocol_type"]) == ["icmp", "tcp", "udp"]
    assert list(t.categories_["service"]) == ["http", "private", "smtp"]
    assert t.transform(frame()).shape == (50, len(NUMERIC_FEATURES) + 3 + 3 + 2)


def test_codes_do_not_depend_on_the_scored_file():
    """Unlike a LabelEncoder re-fitted per upload, the same value always encodes the same."""
    t = KDDFeatureTransformer().fit(frame())
    single = frame(1, seed=3)
    alone = t.transform(single)
    within = t.transform(pd.concat([frame(20, seed=9), single], ignore_index=True))[-1:]
    np.testing.assert_array_equal(alone, within)


def test_unseen_category_encodes_as_zeros_not_as_another_category():
    t = KDDFeatureTransformer().fit(frame())
    row = frame(1)
    row.loc[0, "service"] = "gopher"
    X = t.transform(row)
    start = len(NUMERIC_FEATURES) + len(t.categories_["protocol_type"])
    service_block = X[0, start:start + len(t.categories_["service"])]
    assert not service_block.any()
    assert t.unseen_categories(row)["service"].tolist() == [True]
    assert t.unseen_categories(row)["flag"].tolist() == [False]


def test_heavy_tailed_columns_are_logged_and_everything_is_clipped():
    t = KDDFeatureTransformer(clip=5.0).fit(frame())
    assert t.log_mask_[list(NUMERIC_FEATURES).index("src_bytes")]
    huge = frame(1, src_bytes=np.array([1e300]))
    X = t.transform(huge)
    assert np.isfinite(X).all()
    assert X[:, : len(NUMERIC_FEATURES)].max() <= 5.0


def test_a_value_near_the_float_limit_in_an_unlogged_column_clips_without_a_warning():
    column = "serror_rate"  # a rate: never above 1 in training, so not logged
    t = KDDFeatureTransformer(clip=5.0).fit(frame(**{column: np.tile([0.0, 0.1], 25)}))
    assert not t.log_mask_[list(NUMERIC_FEATURES).index(column)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = t.transform(frame(1, **{column: np.array([1.7e308])}))
    assert X[0, list(NUMERIC_FEATURES).index(column)] == 5.0


def test_output_sources_group_one_hot_columns_by_input_feature():
    t = KDDFeatureTransformer().fit(frame())
    sources = list(t.output_sources_)
    for name in CATEGORICAL_FEATURES:
        assert sources.count(name) == len(t.categories_[name])
    assert len(t.get_feature_names_out()) == len(sources)


def test_missing_columns_are_refused_with_their_names():
    with pytest.raises(ValueError, match="missing"):
        KDDFeatureTransformer().fit(frame().drop(columns=["flag"]))


def test_arrays_from_the_reader_transform_exactly_like_the_frame():
    t = KDDFeatureTransformer().fit(frame())
    rows = [",".join(["0", protocol, service, flag, "215"] + ["1"] * 37)
            for protocol, service, flag in [("tcp", "http", "SF"), ("udp", " smtp ", "S0"),
                                            ("icmp", "gopher", "SF"), ("tcp", "http", "XYZ")]]
    records = read_records(("\n".join(rows) + "\n").encode())
    assert records.arrays is not None
    np.testing.assert_array_equal(t.transform_arrays(records.arrays),
                                  t.transform(records.features))
