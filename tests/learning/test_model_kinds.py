"""Where each input kind's models live: the KDD model keeps the committed layout."""

from pathlib import Path

import pytest

from utils.model_store import KINDS, LocalModelStore, kind_model_dir, open_model_store


def test_kdd_models_stay_in_the_model_folder_itself(tmp_path: Path) -> None:
    assert kind_model_dir(tmp_path, "kdd") == tmp_path


def test_every_other_kind_gets_a_subfolder_named_after_it(tmp_path: Path) -> None:
    assert kind_model_dir(tmp_path, "zeek") == tmp_path / "zeek"
    assert set(KINDS) == {"kdd", "zeek"}


def test_unknown_kind_is_refused_with_the_known_ones_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kdd, zeek"):
        kind_model_dir(tmp_path, "netflow")


def test_store_of_a_kind_opens_that_kinds_folder(tmp_path: Path) -> None:
    store = open_model_store(tmp_path, kind="zeek")
    assert isinstance(store, LocalModelStore)
    assert store.model_dir == tmp_path / "zeek"
