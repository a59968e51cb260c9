"""Two stream machines, one broker: each machine's case tasks reach the worker that has its spool.

"Machines" here are two data dirs (spools) with a Celery worker each (``URBANEYE_NODE_NAME`` machine-a
and machine-b), both also consuming the shared ``cases`` queue, plus this process playing both stream
workers (a ``Handoff`` and relay per spool). Besides the normal path, tasks are sent astray on purpose:
to the shared queue, to the other machine's queue, and in the old form without a machine name, for an
item whose own send never happened (a crash between spooling and sending).
"""

from __future__ import annotations

from collections import Counter

import yaml
from sqlalchemy import select

from tests.urbaneye.conftest import REPO, make_context, make_event, make_frames
from tests.urbaneye.test_drills import IMMEDIATE, _all_delivered, _state
from tests.waiting import wait_for
from urbaneye.audit_verify import verify_evidence
from urbaneye.cases.spool import make_item_id
from urbaneye.cases.tasks import process_spool_item_task
from urbaneye.db.models import Case
from urbaneye.db.session import session_scope
from urbaneye.storage import get_store

NODES = ("machine-a", "machine-b")


def test_every_violation_of_two_machines_becomes_one_case_none_errors(
    make_stack, private_redis_url, worker_factory, stream_relay, tmp_path
):
    stack = make_stack(private_redis_url, push_policy=IMMEDIATE)
    workers, handoffs = {}, {}
    for node in NODES:
        data_dir = tmp_path / node
        env = {**stack.env, "URBANEYE_DATA_DIR": str(data_dir), "URBANEYE_NODE_NAME": node}
        workers[node] = worker_factory(env)
        workers[node].start()
        handoffs[node] = stream_relay(data_dir / "spool", node=node, outbox=node == NODES[0])

    vids: list[str] = []
    for i in range(12):  # both machines see violations, interleaved
        node = NODES[i % 2]
        ev = make_event(f"{node}:z1:{i}", camera_id=f"cam-{node}")
        handoffs[node].submit(ev, make_frames(ev), make_context(camera_id=f"cam-{node}"))
        vids.append(ev.violation_id)
        if node == "machine-a":  # an old-style task on the shared queue: either worker may take it
            process_spool_item_task.apply_async(
                args=[make_item_id(ev.violation_id, ev.event, ev.ts_s), node], queue="cases"
            )

    # machine-a spooled a violation but crashed before sending its task; the task that reaches
    # machine-b (once with machine-a's name, once without any) must not fail there
    orphan = make_event("machine-a:z1:99", camera_id="cam-machine-a")
    orphan_item = make_item_id(orphan.violation_id, orphan.event, orphan.ts_s)
    assert handoffs["machine-a"].spool.write(
        orphan_item,
        orphan,
        make_context(camera_id="cam-machine-a"),
        make_frames(orphan),
        claim_send=True,  # "sent" by the crashed process: only the relay's re-send brings it home
    )
    process_spool_item_task.apply_async(args=[orphan_item, "machine-a"], queue="cases.machine-b")
    process_spool_item_task.apply_async(args=[orphan_item], queue="cases.machine-b")
    vids.append(orphan.violation_id)

    wait_for(lambda: _all_delivered(stack, vids), timeout_s=120, what="every violation delivered once")
    for node, handoff in handoffs.items():
        wait_for(lambda h=handoff: not h.spool.pending_ids(), what=f"spool of {node} drained")

    st = _state(stack.db_url)
    assert st["violations"] == sorted(vids)  # exactly one case each
    assert max(Counter(stack.hotline.keys()).values()) == 1
    with session_scope(stack.db_url) as s:
        assert len(s.scalars(select(Case.id)).all()) == len(vids)
        count, problems = verify_evidence(s, get_store())
    assert (count, problems) == (6 * len(vids), [])

    logs = {node: w.log_path.read_text(errors="replace") for node, w in workers.items()}
    for node, log in logs.items():
        for sign in ("SpoolItemNotFound", "Traceback", "ERROR/"):
            assert sign not in log, f"worker of {node} logged {sign!r}:\n{log[-3000:]}"
    assert "'rerouted'" in logs["machine-b"]  # machine-a's task sent on, not failed
    assert "'not_here'" in logs["machine-b"]  # the nameless one: machine-a's relay re-sent it


def test_compose_services_sharing_the_spool_share_one_node_name():
    """In docker compose every container has its own host name: without one URBANEYE_NODE_NAME the
    streams container would send case tasks to a queue no worker consumes."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    names = {}
    for name, service in compose["services"].items():
        if "spool:/data/spool" in service.get("volumes", []):
            names[name] = service["environment"].get("URBANEYE_NODE_NAME")
    assert {"streams", "celery", "relay"} <= set(names)
    assert len(set(names.values())) == 1 and None not in names.values(), names
