"""Every code a guard can see has words in Chinese and English."""

import pytest

from gate_agent.core import messages
from gate_agent.core.reasons import NextStep, Outcome, Reason


@pytest.mark.parametrize("item", [*Outcome, *Reason, *NextStep])
def test_every_code_has_chinese_and_english(item: Outcome | Reason | NextStep) -> None:
    zh, en = messages.text(item, "zh"), messages.text(item, "en")
    assert zh and en and zh != en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh
    assert en.isascii(), en


def test_tables_have_no_stale_entries() -> None:
    assert set(messages.REASONS) == set(Reason)
    assert set(messages.OUTCOMES) == set(Outcome)
    assert set(messages.NEXT_STEPS) == set(NextStep)
