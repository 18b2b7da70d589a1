"""The service suite's core on a real Redis Cluster (3 masters + 3 replicas): events, rules,
scripts, timers and webhooks through the real app, with the worker and the outbox running.

These are the server tests themselves, imported by name: tests/cluster/conftest.py points their
`settings` (and so `client` and `ws`) at the cluster, so each one runs unchanged against it. With
4 partitions and workspaces spread over 16384 slots, every test crosses masters: the stream and
lease of a partition, the workspace's slot and the global keys live on different nodes.
"""
from __future__ import annotations

import pytest
from test_api_events import (  # noqa: F401
    test_batch_in_order_with_duplicates,
    test_duplicate_is_a_no_op,
    test_event_queued_then_processed,
    test_group_membership_reaches_rules_and_events_update_it,
    test_healthz_readyz_metrics_docs,
    test_runs_and_run_record_explain,
    test_ticket_list_filters_and_paging,
    test_updates_feed_pages_and_skips_no_change,
)
from test_api_rules import (  # noqa: F401
    test_crud_and_toggle,
    test_rule_order_and_stop_apply,
    test_rule_runs_lists_where_it_fired,
    test_worker_uses_new_rules_at_once,
)
from test_scripts_api import (  # noqa: F401
    crm,
    test_a_failing_script_is_recorded_and_the_event_still_applies,
    test_the_crm_vip_example_runs_through_the_event_pipeline,
    test_upload_adds_versions_and_reads_back,
)
from test_time_e2e import (  # noqa: F401
    test_a_customer_reply_wakes_a_snoozed_ticket_early,
    test_idle_nudge_time_rule_fires_once_within_a_second,
    test_snooze_then_wake_on_time_with_the_old_status,
)
from test_webhooks import (  # noqa: F401
    app_client,
    fast,
    rx,
    test_dead_lettered_after_the_window_then_resent,
    test_retried_until_the_receiver_answers,
    test_update_is_posted_signed_with_the_feed_entry,
    wsp,
)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


def test_the_app_runs_on_the_cluster_client_across_masters(settings, local_cluster) -> None:
    """The tests above really ran on the cluster: the store opens a ClusterClient, and one
    workspace's events leave keys on more than one master."""
    import asyncio

    from server_helpers import Workspace, event
    from starlette.testclient import TestClient

    from server.app import create_app
    from server.store.cluster import ClusterClient
    from server.store.connect import close_store, open_store

    async def kind() -> type:
        store = await open_store(settings)
        try:
            return type(store.redis)
        finally:
            await close_store(store)

    assert asyncio.run(kind()) is ClusterClient
    with TestClient(create_app(settings, worker=True)) as c:
        ws = Workspace(c)
        for i in range(8):
            assert ws.send(event(f"e{i}", tid=f"T-{i}"))["status"] == "processed"
    per_master = {}
    for port in local_cluster.master_ids():
        with local_cluster.node_at(port).client() as r:
            per_master[port] = r.dbsize()
    assert sum(1 for n in per_master.values() if n) >= 2, per_master
