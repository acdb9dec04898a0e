"""The status enums and their moves agree with the schema's CHECK constraints."""

from __future__ import annotations

import re

import pytest

from mailer.states import (
    CAMPAIGN_MOVES,
    CONTACT_MOVES,
    DELIVERY_MOVES,
    CampaignStatus,
    ContactStatus,
    DeliveryStatus,
    campaign_sources,
    contact_may_move,
    delivery_sources,
)
from mailer.store import Store


def _checked_values(store: Store, table: str) -> set[str]:
    sql = store.conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()[0]
    found = re.search(r"CHECK\s*\(\s*status\s+IN\s*\(([^)]*)\)", sql)
    assert found, f"{table} has no CHECK on status"
    return set(re.findall(r"'([^']+)'", found.group(1)))


@pytest.mark.parametrize(
    ("table", "enum"),
    [("campaigns", CampaignStatus), ("deliveries", DeliveryStatus), ("contacts", ContactStatus)],
)
def test_every_status_in_the_schema_is_an_enum_member_and_back(tmp_path, table, enum):
    with Store(tmp_path / "m.db") as store:
        assert _checked_values(store, table) == {member.value for member in enum}


@pytest.mark.parametrize("moves", [CAMPAIGN_MOVES, DELIVERY_MOVES, CONTACT_MOVES])
def test_every_status_has_a_row_in_its_table_of_moves(moves):
    some = next(iter(moves))
    assert set(moves) == set(type(some))
    for ends in moves.values():
        assert ends <= set(type(some))


def test_finished_states_lead_nowhere_and_a_sent_campaign_only_resends_unknowns():
    for end in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED):
        assert DELIVERY_MOVES[end] == frozenset()
    assert CAMPAIGN_MOVES[CampaignStatus.CANCELLED] == frozenset()
    assert CAMPAIGN_MOVES[CampaignStatus.SENT] == {CampaignStatus.SENDING}


def test_sources_are_what_the_compare_and_set_updates_expect():
    assert campaign_sources(CampaignStatus.CANCELLED) == ("draft", "paused", "scheduled", "sending")
    assert campaign_sources(CampaignStatus.SENT) == ("paused", "sending")
    assert delivery_sources(DeliveryStatus.SENDING) == ("deferred", "pending")
    assert delivery_sources(DeliveryStatus.UNKNOWN) == ("sending",)


def test_a_contact_moves_only_through_subscribed():
    assert contact_may_move("subscribed", "bounced")
    assert contact_may_move("bounced", "subscribed")
    assert not contact_may_move("unsubscribed", "bounced")
    assert not contact_may_move("bounced", "unsubscribed")
    assert not contact_may_move("subscribed", "subscribed")
