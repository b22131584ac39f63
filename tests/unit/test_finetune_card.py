"""The model card's regeneration keeps what was measured after training."""

from __future__ import annotations

from pathlib import Path

from almanac.finetune.card import keep_added_sections

SHIPPED_CARD = Path(__file__).resolve().parents[2] / "models" / "default" / "MODEL_CARD.md"


def _without(card: str, heading: str) -> str:
    start = card.index(f"\n## {heading}\n") + 1
    end = card.index("\n## ", start) + 1
    return card[:start] + card[end:]


def test_sections_added_by_hand_survive_a_new_card() -> None:
    shipped = SHIPPED_CARD.read_text(encoding="utf-8")
    # What the generator writes: everything but the sections measured after training.
    added = ("Does it know when the sources don't answer?", "Bases compared", "Runtime")
    generated = shipped
    for heading in added:
        generated = _without(generated, heading)
    assert not any(f"## {heading}" in generated for heading in added)
    assert keep_added_sections(shipped, generated) == shipped


def test_the_new_run_wins_where_both_have_a_section() -> None:
    previous = "# m\n\n## Evaluation\n\nold scores\n\n## Speed\n\n2.5 s\n\n## Files\n\nold\n"
    card = "# m\n\n## Evaluation (held-out set)\n\nnew scores\n\n## Files\n\nnew\n"
    merged = keep_added_sections(previous, card)
    assert merged == (
        "# m\n\n## Evaluation (held-out set)\n\nnew scores\n\n## Speed\n\n2.5 s\n\n"
        "## Files\n\nnew\n"
    )
    assert keep_added_sections("", card) == card
