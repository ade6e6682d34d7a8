"""A flow that ends at once, run by Glaneur's worker in one of its lanes as it runs a collection
(``tests/e2e/test_worker_poll.py``)."""

from prefect import flow

ENTRYPOINT = "tests/quick_flow.py:quick_flow"


@flow(name="quick-flow", persist_result=False)
def quick_flow() -> str:
    return "done"
