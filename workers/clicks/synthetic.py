"""A synthetic click stream with the structure real shops show, for the demo, tests and a committed model.

* **Popularity skew**: item and category popularity follow Zipf laws.
* **Categories and co-views**: each item has a few "viewed together" neighbours, mostly in its own
  category; shoppers follow them, go back to earlier items, and now and then switch category.
* **Funnels**: a latent buyer intent raises cart rates and revisits; a purchase follows a cart
  and ends the session. Non-buyers rarely cart and almost never buy.

Deterministic for a seed, and only numpy: the demo generates it without the training extras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.clicks.events import Event


@dataclass(frozen=True)
class Catalog:
    categories: np.ndarray  # item -> category
    members: list[np.ndarray]  # category -> items, most popular first
    member_p: list[np.ndarray]  # category -> popularity distribution over its members
    neighbours: np.ndarray  # item -> co-viewed items [n_items, k]
    category_p: np.ndarray


def make_catalog(rng: np.random.Generator, n_items: int, n_categories: int, n_neighbours: int = 4) -> Catalog:
    categories = rng.integers(0, n_categories, n_items)
    members, member_p = [], []
    for c in range(n_categories):
        items = np.flatnonzero(categories == c)
        if items.size == 0:
            items = np.array([rng.integers(0, n_items)])
        items = rng.permutation(items)
        p = 1.0 / np.arange(1, items.size + 1) ** 1.1
        members.append(items)
        member_p.append(p / p.sum())
    neighbours = np.empty((n_items, n_neighbours), dtype=np.int64)
    for i in range(n_items):
        c = categories[i]
        for j in range(n_neighbours):
            source = c if rng.random() < 0.85 else rng.integers(0, n_categories)
            neighbours[i, j] = rng.choice(members[source], p=member_p[source])
    category_p = 1.0 / np.arange(1, n_categories + 1) ** 0.8
    return Catalog(categories, members, member_p, neighbours, category_p / category_p.sum())


def generate(
    n_sessions: int,
    seed: int = 0,
    n_items: int = 1000,
    n_categories: int = 30,
    n_users: int | None = None,
    start_ts: float = 1_767_225_600.0,  # 2026-01-01
    days: float = 7.0,
    catalog_seed: int = 1,
) -> list[Event]:
    """Events of ``n_sessions`` sessions spread over ``days`` (they interleave, as in a live stream).

    ``seed`` draws the shoppers; ``catalog_seed`` the shop (items, categories, co-views), so logs with
    different seeds come from the same shop and a model trained on one can be tested on another.
    """
    rng = np.random.default_rng(seed)
    catalog = make_catalog(np.random.default_rng(catalog_seed), n_items, n_categories)
    n_users = n_users or max(1, n_sessions // 3)
    events: list[Event] = []
    for s in range(n_sessions):
        buyer = rng.random() < 0.3
        category = rng.choice(len(catalog.category_p), p=catalog.category_p)
        item = int(rng.choice(catalog.members[category], p=catalog.member_p[category]))
        ts = start_ts + rng.random() * days * 86400
        user = f"u{rng.integers(0, n_users)}"
        history: list[int] = []
        carted: int | None = None
        max_len = int(rng.geometric(1 / 9)) + 1
        for _ in range(max_len):
            event_type = "view"
            if rng.random() < (0.16 if buyer else 0.03):
                event_type, carted = "cart", item
            elif rng.random() < 0.3:
                event_type = "click"
            history.append(item)
            events.append(Event(f"s{s}", f"i{item}", round(ts, 3), event_type, user))
            ts += float(rng.lognormal(3.0, 0.8))
            if carted is not None and rng.random() < (0.35 if buyer else 0.03):
                events.append(Event(f"s{s}", f"i{carted}", round(ts, 3), "purchase", user))
                break
            item = _next_item(rng, catalog, item, history, buyer)
    events.sort(key=lambda e: e.ts)
    return events


def _next_item(rng: np.random.Generator, catalog: Catalog, item: int, history: list[int], buyer: bool) -> int:
    r = rng.random()
    revisit = 0.25 if buyer else 0.1
    if r < revisit and len(history) > 1:
        return history[int(rng.integers(0, len(history)))]
    if r < revisit + 0.5:
        return int(catalog.neighbours[item, rng.integers(0, catalog.neighbours.shape[1])])
    if r < revisit + 0.8:
        c = catalog.categories[history[0]]  # the session's original intent persists
        return int(rng.choice(catalog.members[c], p=catalog.member_p[c]))
    c = rng.choice(len(catalog.category_p), p=catalog.category_p)
    return int(rng.choice(catalog.members[c], p=catalog.member_p[c]))


def generate_hard(
    n_sessions: int,
    seed: int = 0,
    n_items: int = 2000,
    n_categories: int = 40,
    start_ts: float = 1_767_225_600.0,
    days: float = 28.0,
    catalog_seed: int = 2,
) -> list[Event]:
    """A harder shop, where a first-order rule is not enough and the past does not simply repeat:

    * **higher-order paths**: after the pair (a, b), shoppers often go on to one item that depends on both
      (an outfit, a bundle): b alone does not tell it;
    * **repeat visits**: returning users start from, and come back to, items of their earlier sessions;
    * **item cold start**: a fifth of the catalogue is released during the period, at a random time each;
    * **popularity drift**: within each category the popular items change as the weeks go by.

    Sessions start in time order over ``days``, so a split by time meets new items and moved popularity.
    """
    rng = np.random.default_rng(seed)
    catalog = make_catalog(np.random.default_rng(catalog_seed), n_items, n_categories)
    shop = np.random.default_rng(catalog_seed + 1000)
    release = np.where(shop.random(n_items) < 0.2, shop.random(n_items), 0.0)  # fraction of the period
    salt = int(shop.integers(1, 2**31))
    users: dict[int, list[int]] = {}
    events: list[Event] = []
    for s in range(n_sessions):
        phase = (s + rng.random()) / n_sessions
        ts = start_ts + phase * days * 86400
        user = int(rng.integers(0, max(1, n_sessions // 4)))
        past = users.get(user, [])

        def draw(category: int) -> int:
            members = catalog.members[category]
            shift = int(phase * 4 * len(members) / 5)  # the ranking moves through the category over the period
            order = np.roll(members, -shift)
            allowed = order[release[order] <= phase]
            if allowed.size == 0:
                allowed = order
            p = 1.0 / np.arange(1, allowed.size + 1) ** 1.1
            return int(rng.choice(allowed, p=p / p.sum()))

        if past and rng.random() < 0.5:
            item = past[int(rng.integers(0, len(past)))]
        else:
            item = draw(int(rng.choice(len(catalog.category_p), p=catalog.category_p)))
        history = [item]
        for _ in range(int(rng.geometric(1 / 8))):
            events.append(Event(f"h{s}", f"i{item}", round(ts, 3), "view" if rng.random() < 0.7 else "click", f"u{user}"))
            ts += float(rng.lognormal(3.0, 0.8))
            r = rng.random()
            if len(history) >= 2 and r < 0.4:
                a, b = history[-2], history[-1]  # the path of the pair: a function of both items
                candidates = catalog.members[catalog.categories[b]]
                nxt = int(candidates[(a * 7919 + b * 104729 + salt) % candidates.size])
                item = nxt if release[nxt] <= phase else draw(int(catalog.categories[b]))
            elif r < 0.5 and past:
                item = past[int(rng.integers(0, len(past)))]
            elif r < 0.75:
                item = int(catalog.neighbours[item, rng.integers(0, catalog.neighbours.shape[1])])
                item = item if release[item] <= phase else draw(int(catalog.categories[item]))
            else:
                item = draw(int(catalog.categories[history[0]]) if rng.random() < 0.7 else
                            int(rng.choice(len(catalog.category_p), p=catalog.category_p)))
            history.append(item)
        users[user] = (past + history)[-30:]
    events.sort(key=lambda e: e.ts)
    return events
