"""The shoppers' endpoint mix: dealt from a deck, so short runs still hold every endpoint in its share."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from spyglass.demo.traffic import ENDPOINTS, EndpointDeck

DECK = sum(endpoint.cards for endpoint in ENDPOINTS)


@pytest.mark.parametrize("seed", range(20))
def test_every_deck_of_requests_holds_the_whole_mix(seed: int) -> None:
    deck = EndpointDeck(ENDPOINTS, random.Random(seed))
    dealt = [deck.deal() for _ in range(DECK * 30)]
    for start in range(0, len(dealt), DECK):
        assert Counter(dealt[start : start + DECK]) == {endpoint: endpoint.cards for endpoint in ENDPOINTS}
    # Any two decks' worth in a row, wherever it starts, holds a whole deck and so every endpoint.
    for start in range(len(dealt) - 2 * DECK + 2):
        assert set(dealt[start : start + 2 * DECK - 1]) == set(ENDPOINTS)


def test_the_order_is_shuffled_not_fixed() -> None:
    deck = EndpointDeck(ENDPOINTS, random.Random(1))
    rounds = {tuple(deck.deal().path for _ in range(DECK)) for _ in range(10)}
    assert len(rounds) > 1


def test_threads_dealing_at_once_share_one_deck() -> None:
    deck = EndpointDeck(ENDPOINTS, random.Random(3))
    with ThreadPoolExecutor(max_workers=8) as shoppers:
        hands = list(shoppers.map(lambda _: [deck.deal() for _ in range(DECK * 10)], range(8)))
    assert Counter(e for hand in hands for e in hand) == {
        endpoint: endpoint.cards * 80 for endpoint in ENDPOINTS
    }
