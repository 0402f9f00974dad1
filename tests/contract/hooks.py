"""schemathesis hooks for tests/contract/run.sh.

Each generated `Idempotency-Key` is made unique just before the call: the
bridge rightly answers 422 when a key comes back with a different request,
which schemathesis would otherwise report as a valid request rejected. Key
handling itself is covered by the integration tests (tests/api/reliability.rs)."""

import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"contract-{uuid.uuid4()}"
