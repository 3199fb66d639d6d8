"""The exception hierarchy: relationships, str(), and pickling with every field."""

from __future__ import annotations

import builtins
import copy
import pickle
import re

import pytest

import s3pull
from s3pull import _errors
from s3pull._source import HttpSource

EXCEPTIONS = sorted(
    (
        value
        for name in s3pull.__all__
        if isinstance(value := getattr(s3pull, name), type) and issubclass(value, BaseException)
    ),
    key=lambda cls: cls.__name__,
)
TRANSIENT = [cls for cls in EXCEPTIONS if issubclass(cls, s3pull.TransientError)]
FIELDS = ("message", "source", "range", "attempts", "status", "code", "retry_after")


def test_every_exported_exception_was_found() -> None:
    # Guard the parametrization below against silently testing nothing.
    assert len(EXCEPTIONS) == 27
    assert len(TRANSIENT) == 5


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exception_derives_from_the_base(cls: type[BaseException]) -> None:
    assert issubclass(cls, s3pull.S3PullError)


def test_module_docstring_tree_lists_exactly_the_exported_exceptions() -> None:
    assert _errors.__doc__ is not None
    tree = set(re.findall(r"(?m)^ {4}[│├└─ ]*([A-Z]\w+)", _errors.__doc__))
    assert tree == {cls.__name__ for cls in EXCEPTIONS}


def _full(cls: type[s3pull.S3PullError]) -> s3pull.S3PullError:
    error = cls(
        "it went wrong",
        source="s3://bucket/dir/key.bin",
        range=(1024, 2047),
        attempts=4,
        status=503,
        code="SlowDown",
    )
    if isinstance(error, s3pull.TransientError):
        error.retry_after = 2.5
    return error


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_round_trip_keeps_type_fields_and_str(
    cls: type[s3pull.S3PullError], protocol: int
) -> None:
    error = _full(cls)
    clone = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(clone) is cls
    for name in FIELDS:
        if name == "retry_after" and not issubclass(cls, s3pull.TransientError):
            continue
        assert getattr(clone, name) == getattr(error, name), name
    assert str(clone) == str(error)
    assert clone.args == error.args


@pytest.mark.parametrize("cls", TRANSIENT, ids=lambda cls: cls.__name__)
def test_pickle_keeps_retry_after(cls: type[s3pull.TransientError]) -> None:
    error = cls("slow down")
    assert error.retry_after is None
    error.retry_after = 7.0
    assert pickle.loads(pickle.dumps(error)).retry_after == 7.0
    assert pickle.loads(pickle.dumps(cls("x"))).retry_after is None


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_pickle_with_defaults(cls: type[s3pull.S3PullError]) -> None:
    clone = pickle.loads(pickle.dumps(cls("plain")))
    assert type(clone) is cls
    assert (clone.source, clone.range, clone.attempts, clone.status, clone.code) == (
        None,
        None,
        0,
        None,
        None,
    )
    assert str(clone) == "plain"


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_deepcopy_keeps_fields(cls: type[s3pull.S3PullError]) -> None:
    error = _full(cls)
    clone = copy.deepcopy(error)
    assert type(clone) is cls
    assert str(clone) == str(error)
    assert clone.range == (1024, 2047)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (s3pull.ConfigError, ValueError),
        (s3pull.InvalidSourceError, ValueError),
        (s3pull.UnsafePathError, ValueError),
        (s3pull.LocalError, OSError),
        (s3pull.DiskFullError, OSError),
        (s3pull.NotFoundError, FileNotFoundError),
        (s3pull.AccessDeniedError, PermissionError),
        (s3pull.TimeoutError, builtins.TimeoutError),
    ],
)
def test_builtin_bases(cls: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(cls, builtin)
    with pytest.raises(builtin):
        raise cls("x")


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (s3pull.DiskFullError, s3pull.LocalError),
        (s3pull.NotFoundError, s3pull.TransferError),
        (s3pull.AccessDeniedError, s3pull.TransferError),
        (s3pull.CredentialsError, s3pull.TransferError),
        (s3pull.ObjectChangedError, s3pull.TransferError),
        (s3pull.IntegrityError, s3pull.TransferError),
        (s3pull.ProtocolError, s3pull.TransferError),
        (s3pull.TransientError, s3pull.TransferError),
        (s3pull.ThrottledError, s3pull.TransientError),
        (s3pull.ServerError, s3pull.TransientError),
        (s3pull.NetworkError, s3pull.TransientError),
        (s3pull.TimeoutError, s3pull.TransientError),
    ],
)
def test_tree(cls: type[BaseException], parent: type[BaseException]) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    "cls",
    [
        s3pull.NotFoundError,
        s3pull.AccessDeniedError,
        s3pull.CredentialsError,
        s3pull.IntegrityError,
        s3pull.ConfigError,
        s3pull.LocalError,
    ],
)
def test_permanent_errors_are_not_transient(cls: type[BaseException]) -> None:
    assert not issubclass(cls, s3pull.TransientError)


def test_timeout_error_shadows_but_does_not_replace_the_builtin() -> None:
    assert s3pull.TimeoutError is not builtins.TimeoutError


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "boom"),
        ({"source": "s3://b/k"}, "s3://b/k: boom"),
        ({"range": (0, 99)}, "boom (bytes 0-99)"),
        ({"attempts": 1}, "boom"),
        ({"attempts": 3}, "boom (after 3 attempts)"),
        (
            {"source": "s3://b/k", "range": (5, 9), "attempts": 2},
            "s3://b/k: boom (bytes 5-9, after 2 attempts)",
        ),
        ({"status": 500, "code": "InternalError"}, "boom"),
    ],
)
def test_str(kwargs: dict[str, object], expected: str) -> None:
    assert str(s3pull.ServerError("boom", **kwargs)) == expected  # type: ignore[arg-type]


def test_os_error_subclasses_use_our_str() -> None:
    error = s3pull.DiskFullError("disk full", source="s3://b/k", range=(1, 2))
    assert str(error) == "s3://b/k: disk full (bytes 1-2)"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


SECRET = "Zq8sEcReTsIgNaTuRe0123"


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_error_built_from_a_presigned_source_never_holds_the_signature(
    cls: type[s3pull.S3PullError],
) -> None:
    source = HttpSource(
        "https://user:hunter2@bucket.s3.amazonaws.com/k.bin"
        f"?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}x&X-Amz-Security-Token={SECRET}y"
    )
    error = cls("denied", source=source.redacted, attempts=2)
    for text in (str(error), repr(error), pickle.dumps(error).decode("latin-1")):
        assert SECRET not in text
        assert "hunter2" not in text
