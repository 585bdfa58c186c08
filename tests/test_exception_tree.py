"""One exception tree: every exception class the package defines derives from
``CollectorError``, and the classifier goes by the tree, not by class names."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import vatsim_collector
from vatsim_collector.errors.exceptions import (
    Category,
    CollectorError,
    ConfigurationError,
    DataRejected,
    FeedUnavailable,
    StorageUnavailable,
)
from vatsim_collector.errors.taxonomy import classify


def package_modules() -> list[ModuleType]:
    # ``__main__`` would run the command line on import.
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(vatsim_collector.__path__, "vatsim_collector.")
        if not info.name.endswith(".__main__")
    ]


def package_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined (not merely imported) in a module of the package."""
    found: dict[str, type[BaseException]] = {}
    for module in package_modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_of_the_package_is_in_the_tree() -> None:
    found = package_exceptions()
    # The walk sees the package's exceptions, private ones included, wherever they live.
    assert {
        "vatsim_collector.config.SettingsError",
        "vatsim_collector.feed.client.FeedError",
        "vatsim_collector.pipeline.spool._Damaged",
        "vatsim_collector.api.problems.ProblemError",
    } <= found.keys()
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, CollectorError))
    assert outside == []


@pytest.mark.parametrize(
    ("name", "branch"),
    [
        ("vatsim_collector.feed.client.FeedError", FeedUnavailable),
        ("vatsim_collector.feed.client.FeedDocumentError", DataRejected),
        ("vatsim_collector.feed.decode.FeedDecodeError", DataRejected),
        ("vatsim_collector.feed.body.DocumentTooLarge", DataRejected),
        ("vatsim_collector.feed.body.BadCompression", DataRejected),
        ("vatsim_collector.feed.body.UnsupportedEncoding", DataRejected),
        ("vatsim_collector.pipeline.ingest.DatabaseUnavailable", StorageUnavailable),
        ("vatsim_collector.config.SettingsError", ConfigurationError),
        ("vatsim_collector.airspace.sectors.SectorLoadError", ConfigurationError),
    ],
)
def test_the_raised_exceptions_hang_on_their_branch(
    name: str, branch: type[CollectorError]
) -> None:
    assert issubclass(package_exceptions()[name], branch)


def test_classification_follows_the_tree_not_the_name() -> None:
    """A subclass defined anywhere, under any name, is classified as its branch."""

    class Elsewhere(DataRejected):
        pass

    class Down(StorageUnavailable):
        pass

    assert classify(Elsewhere("x")).category is Category.DECODE
    assert classify(Down("x")).transient is True


def test_a_wrapper_kind_is_not_inherited() -> None:
    """Only a class that says ``wrapper=True`` defers to its cause; its subclasses do not."""

    class Wrapping(CollectorError, wrapper=True):
        pass

    class Specific(Wrapping):
        category = Category.RESOURCE

    cause = ConnectionRefusedError("refused")
    wrapping, specific = Wrapping("w"), Specific("s")
    wrapping.__cause__ = specific.__cause__ = cause
    assert classify(wrapping).category is Category.NETWORK
    assert classify(specific).category is Category.RESOURCE
