from collections import Counter

from workers.clicks.events import sessions
from workers.clicks.synthetic import generate


def test_the_generator_is_deterministic_and_shaped_like_a_shop() -> None:
    events = generate(2000, seed=3)
    assert events == generate(2000, seed=3)
    assert events != generate(2000, seed=4)
    assert [e.ts for e in events] == sorted(e.ts for e in events)  # one interleaved live stream

    popularity = Counter(e.item_id for e in events)
    top = sum(n for _, n in popularity.most_common(len(popularity) // 10))
    assert top / len(events) > 0.35  # popularity skew: the top 10% of items draw over a third of the views

    grouped = sessions(events)
    bought = [evs for evs in grouped.values() if any(e.event_type == "purchase" for e in evs)]
    assert 0.05 < len(bought) / len(grouped) < 0.5
    for evs in bought:  # funnels: a purchase ends the session and follows a cart of the same item
        assert evs[-1].event_type == "purchase"
        assert any(e.event_type == "cart" and e.item_id == evs[-1].item_id for e in evs[:-1])
