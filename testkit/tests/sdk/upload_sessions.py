"""The official Dropbox Python SDK (12.2.5) against the dbxport emulator: the upload-session
routes the engine uses (start, append_v2, start_batch, append_batch, finish_batch_v2), each
result and each error decoded by the SDK's own types, which validate what they receive, so an
answer of the wrong shape fails here. Run by testkit/tests/sdk_conformance.rs with the virtualenv
that tests/deps makes; prints "all checks passed" last.

Environment: DROPBOX_API_HOST and DROPBOX_API_CONTENT_HOST (the SDK's own host overrides) name
the emulator's 127.0.0.1:PORT; DBXPORT_TOKEN is its access token; DBXPORT_MAX_BODY the body
limit the emulator was given (lowered, so payload_too_large is cheap to reach).
"""

import json
import os
import sys

import requests

import dropbox
from dropbox import files
from dropbox.content_hash import content_hash
from dropbox.exceptions import ApiError

HOST = os.environ["DROPBOX_API_HOST"]
MAX_BODY = int(os.environ["DBXPORT_MAX_BODY"])


def check(condition, what):
    if not condition:
        raise AssertionError(what)


class PlainHttp(requests.Session):
    """The SDK always builds https:// URLs; the emulator speaks plain HTTP on loopback. Keeps
    the Dropbox-API-Arg of each request, to check what the SDK sent."""

    def __init__(self):
        super().__init__()
        self.args = []

    def request(self, method, url, *args, **kwargs):
        prefix = "https://" + HOST + "/"
        check(url.startswith(prefix), "the SDK called %s, not the emulator" % url)
        headers = kwargs.get("headers") or {}
        self.args.append((url[len(prefix):], headers.get("Dropbox-API-Arg")))
        return super().request(method, "http://" + url[len("https://"):], *args, **kwargs)


def api_error(call, error_type):
    """Runs `call`, which must fail with a route error of `error_type`; returns that error."""
    try:
        call()
    except ApiError as e:
        check(isinstance(e.error, error_type), "%r is not a %s" % (e.error, error_type.__name__))
        return e.error
    raise AssertionError("no error from a call that must fail")


def cursor(session, offset):
    return files.UploadSessionCursor(session_id=session, offset=offset)


def entry(session, offset, length, close):
    return files.UploadSessionAppendBatchArgEntry(
        cursor=cursor(session, offset), length=length, close=close
    )


def main():
    check(dropbox.__version__ == "12.2.5", "SDK %s, not 12.2.5" % dropbox.__version__)
    check(dropbox.session.API_HOST == HOST, "the SDK's DROPBOX_API_HOST override was not read")
    http = PlainHttp()
    dbx = dropbox.Dropbox(
        oauth2_access_token=os.environ["DBXPORT_TOKEN"],
        session=http,
        max_retries_on_error=0,
        max_retries_on_rate_limit=0,
    )
    committed = []  # (session, data, path)

    # The single-session routes, briefly: start with data, append_v2 closing, and an append at
    # the wrong offset decoded as the SDK's UploadSessionAppendError.
    single = dbx.files_upload_session_start(b"head-", close=False).session_id
    dbx.files_upload_session_append_v2(b"tail", cursor(single, 5), close=True)
    error = api_error(
        lambda: dbx.files_upload_session_append_v2(b"x", cursor(single, 3)),
        files.UploadSessionAppendError,
    )
    check(error.is_incorrect_offset(), repr(error))
    check(error.get_incorrect_offset().correct_offset == 9, repr(error))
    committed.append((single, b"head-tail", "/SDK/single.txt"))

    # start_batch: empty sequential sessions.
    ids = dbx.files_upload_session_start_batch(num_sessions=3).session_ids
    check(len(ids) == 3 and len(set(ids)) == 3, repr(ids))

    # append_batch: three pieces in one body, the SDK adding the whole body's content hash.
    one = b"photo one"
    two = bytes(i % 251 for i in range(5 * 1024 * 1024 + 7))  # more than one 4 MiB block
    three_a, three_b = b"first half, ", b"second half"
    check(len(one) + len(two) + len(three_a) <= MAX_BODY, "the emulator's body limit is too low")
    body = one + two + three_a
    result = dbx.files_upload_session_append_batch(
        body,
        [
            entry(ids[0], 0, len(one), True),
            entry(ids[1], 0, len(two), True),
            entry(ids[2], 0, len(three_a), False),
        ],
    )
    check(isinstance(result, files.UploadSessionAppendBatchResult), repr(result))
    check([e.is_success() for e in result.entries] == [True] * 3, repr(result))
    route, arg = http.args[-1]
    check(route == "2/files/upload_session/append_batch", route)
    check(json.loads(arg)["content_hash"] == content_hash(body), arg)

    # Per-entry failures, in request order, each decoded as UploadSessionAppendBatchEntryError;
    # the entry that is right lands.
    result = dbx.files_upload_session_append_batch(
        b"xyz" + three_b,
        [
            entry(ids[2], 0, 1, False),
            entry(ids[0], len(one), 1, False),
            entry("pid_upload_session:unknown", 0, 1, False),
            entry(ids[2], len(three_a), len(three_b), True),
        ],
    )
    failures = [e.get_failure() if e.is_failure() else None for e in result.entries]
    check(len(failures) == 4, repr(result))
    check(isinstance(failures[0], files.UploadSessionAppendBatchEntryError), repr(failures))
    check(failures[0].is_incorrect_offset(), repr(failures[0]))
    check(failures[0].get_incorrect_offset().correct_offset == len(three_a), repr(failures[0]))
    check(failures[1].is_closed(), repr(failures[1]))
    check(failures[2].is_not_found(), repr(failures[2]))
    check(failures[3] is None and result.entries[3].is_success(), repr(result.entries[3]))
    committed += [
        (ids[0], one, "/SDK/one.txt"),
        (ids[1], two, "/SDK/two.bin"),
        (ids[2], three_a + three_b, "/SDK/three.txt"),
    ]

    # A concurrent session's rules apply per entry too.
    concurrent = dbx.files_upload_session_start_batch(
        num_sessions=1, session_type=files.UploadSessionType.concurrent
    ).session_ids[0]
    result = dbx.files_upload_session_append_batch(b"abc", [entry(concurrent, 0, 3, False)])
    check(
        result.entries[0].get_failure().is_concurrent_session_invalid_data_size(),
        repr(result),
    )

    # Whole-request errors, decoded as UploadSessionAppendBatchError.
    spare = dbx.files_upload_session_start_batch(num_sessions=1).session_ids[0]
    error = api_error(
        lambda: dbx.files_upload_session_append_batch(b"abcd", [entry(spare, 0, 5, True)]),
        files.UploadSessionAppendBatchError,
    )
    check(error.is_length_mismatch(), repr(error))
    error = api_error(
        lambda: dbx.files_upload_session_append_batch(
            b"abcd", [entry(spare, 0, 4, True)], content_hash=content_hash(b"dcba")
        ),
        files.UploadSessionAppendBatchError,
    )
    check(error.is_content_hash_mismatch(), repr(error))
    big = MAX_BODY + 1
    error = api_error(
        lambda: dbx.files_upload_session_append_batch(bytes(big), [entry(spare, 0, big, True)]),
        files.UploadSessionAppendBatchError,
    )
    check(error.is_payload_too_large(), repr(error))
    # None of them touched the session: it still takes its first piece at 0.
    result = dbx.files_upload_session_append_batch(b"spare", [entry(spare, 0, 5, True)])
    check(result.entries[0].is_success(), repr(result))
    committed.append((spare, b"spare", "/SDK/spare.txt"))

    # finish_batch_v2 commits every session; each file has the content hash of its bytes.
    result = dbx.files_upload_session_finish_batch_v2(
        [
            files.UploadSessionFinishArg(
                cursor=cursor(session, len(data)), commit=files.CommitInfo(path=path)
            )
            for session, data, path in committed
        ]
    )
    check(len(result.entries) == len(committed), repr(result))
    for answer, (_, data, path) in zip(result.entries, committed):
        check(answer.is_success(), "%s: %r" % (path, answer))
        metadata = answer.get_success()
        check(isinstance(metadata, files.FileMetadata), repr(metadata))
        check(metadata.path_display == path, repr(metadata))
        check(metadata.size == len(data), repr(metadata))
        check(metadata.content_hash == content_hash(data), "%s: wrong content hash" % path)

    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
