"""A timeline as an Arc app holds it: every record valid by LocoKit2's own rules.

Visits and trips alternate around a month's end that falls on different days in UTC and
in the phone's time zone (Sydney), so the app's local-month item files differ from UTC
months. Records use what newer app versions write: `samplesChanged`, a visit's and a
trip's own `lastSaved`, `foursquareCategoryV2Id`, `userCategory` with its derived
`category`, and the keys Ferry has no column for (`rtreeId`, `category`). Dates are whole
seconds: the apps' encoder writes no fractions.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.arc.app_export import AppTimeline
from tests.arc.swift import ACTIVITY_NAMES

MOVING_TYPES = tuple(t for t in ACTIVITY_NAMES if t not in (-1, 0, 1))


def app_id(rng: random.Random) -> str:
    """`UUID().uuidString`: upper case."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _place(rng: random.Random, index: int, name: str, lat: float, lon: float) -> dict[str, Any]:
    place: dict[str, Any] = {
        "id": app_id(rng),
        "lastSaved": _at("2025-01-30T08:00:00") + timedelta(minutes=index),
        "source": "LocoKit2",
        "latitude": lat,
        "longitude": lon,
        "radiusMean": round(rng.uniform(8, 120), 3),
        "radiusSD": rng.uniform(0, 30),
        "secondsFromGMT": 39600,
        "name": name,
        "isStale": index % 3 == 0,
        "rtreeId": 100 + index,
        "visitCount": rng.randint(0, 900),
        "visitDays": rng.randint(0, 400),
    }
    if index % 2 == 0:
        place.update(
            streetAddress=f"{index + 1} George St / Level {index}",
            locality="Sydney",
            countryCode="au",
            lastVisitDate=_at("2025-01-31T21:00:00"),
        )
    if index == 1:
        place.update(
            mapboxPlaceId="poi.4398046541",
            mapboxCategory="cafe, coffee",
            mapboxMakiIcon="cafe",
            googlePlaceId="ChIJN1t_tDeuEmsRUsoyG83frY4",
            googlePrimaryType="cafe",
            foursquarePlaceId="4b058762f964a520a7c422e3",
            foursquareCategoryId=13035,
            foursquareCategoryV2Id="4bf58dd8d48988d1e0931735",
            userCategory="arc_work",
            category="arc_work",  # derived on export: the user's category wins
        )
    if index == 2:
        place["secondsFromGMT"] = None  # pre-2019 places may lack one
    return place


def app_timeline(*, seed: int = 5) -> AppTimeline:
    """Places, two days of alternating visits and trips across 31 Jan/1 Feb, samples."""
    rng = random.Random(seed)
    names = ("Home", 'Café "Flat White" \\ 日本', "Office", "Gym", "Beach", "Never visited")
    places = [
        _place(rng, i, name, -33.87 + rng.uniform(-0.05, 0.05), 151.21 + rng.uniform(-0.05, 0.05))
        for i, name in enumerate(names)
    ]
    items: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    moment = _at("2025-01-31T09:00:00")  # 20:00 in Sydney: February starts at 13:00 UTC
    previous: dict[str, Any] | None = None
    for n in range(14):
        is_visit = n % 2 == 0
        minutes = rng.choice((1.5, 45, 130, 300)) if is_visit else rng.choice((0.75, 12, 40))
        end = moment + timedelta(seconds=int(minutes * 60))
        saved = end + timedelta(seconds=rng.randint(1, 600))
        base: dict[str, Any] = {
            "id": app_id(rng),
            "lastSaved": saved,
            "isVisit": is_visit,
            "startDate": moment,
            "endDate": end,
            "source": "LocoKit2",
            "sourceVersion": rng.choice(("9.0.0", "8.4.1")),
            "disabled": n == 5,
            "deleted": False,
            "locked": n % 4 == 0,
            "samplesChanged": n % 3 == 0,
            "stepCount": rng.randint(0, 4000) if n % 5 else None,
            "floorsAscended": rng.randint(0, 9),
            "floorsDescended": rng.randint(0, 9),
            "averageAltitude": rng.uniform(-5, 90),
            "activeEnergyBurned": rng.uniform(0, 400) if n % 2 else None,
            "averageHeartRate": rng.uniform(55, 120),
            "maxHeartRate": float(rng.randint(100, 180)),
            "previousItemId": previous["base"]["id"] if previous else None,
        }
        item: dict[str, Any] = {"base": base}
        if is_visit:
            place = places[n // 2 % 5]
            kind = n // 2 % 3  # confirmed, unconfirmed with a place, placeless
            item["visit"] = {
                "itemId": base["id"],
                "lastSaved": saved - timedelta(seconds=rng.randint(0, 90)),
                "latitude": None if kind == 2 and n > 6 else place["latitude"],
                "longitude": None if kind == 2 and n > 6 else place["longitude"],
                "radiusMean": rng.uniform(10, 150),
                "radiusSD": rng.uniform(0, 40),
                "placeId": place["id"] if kind < 2 else None,
                "confirmedPlace": kind == 0,
                "uncertainPlace": kind == 2 or (kind == 1 and n % 4 == 0),
                "customTitle": "Dinner / drinks" if n == 4 else None,
                "streetAddress": place.get("streetAddress") if kind < 2 else "Unnamed Road",
                "locality": "Sydney",
                "countryCode": "au",
            }
        else:
            classified = rng.choice(MOVING_TYPES) if n != 9 else None
            confirmed = classified if n % 3 == 0 and classified is not None else None
            item["trip"] = {
                "itemId": base["id"],
                "lastSaved": saved + timedelta(seconds=rng.randint(0, 30)),
                "distance": rng.uniform(10, 25_000) if n != 13 else 0.0,
                "speed": rng.uniform(0.2, 33.0) if n != 13 else 0.0,
                "classifiedActivityType": classified,
                "confirmedActivityType": confirmed,
                "uncertainActivityType": confirmed is None and (classified is None or n % 2 == 1),
            }
        if previous is not None:
            previous["base"]["nextItemId"] = base["id"]
        items.append(item)
        previous = item
        count = 1 if minutes < 1 else rng.randint(2, 9)
        for k in range(count):
            at = moment + (end - moment) * k / max(1, count - 1)
            samples.append(_sample(rng, at.replace(microsecond=0), item))
        moment = end
    # A deleted visit (no samples: the apps keep none on a deleted item), out of the chain.
    gone = {
        "base": {
            **items[0]["base"],
            "id": app_id(rng),
            "deleted": True,
            "previousItemId": None,
            "nextItemId": None,
            "startDate": _at("2025-01-15T02:00:00"),
            "endDate": _at("2025-01-15T02:30:00"),
        },
        "visit": {**items[0]["visit"], "placeId": None, "confirmedPlace": False},
    }
    gone["visit"].update(itemId=gone["base"]["id"], uncertainPlace=True)
    items.append(gone)
    # Samples the app kept without an item (orphans), one with no location at all.
    samples.append(_sample(rng, _at("2025-02-01T05:00:00"), None))
    bare = _sample(rng, _at("2025-02-01T05:01:00"), None)
    for key in ("latitude", "longitude", "altitude", "horizontalAccuracy", "verticalAccuracy"):
        bare[key] = None
    bare.update(speed=None, course=None, secondsFromGMT=None, rtreeId=None)
    samples.append(bare)
    return AppTimeline(places=places, items=items, samples=samples)


def _sample(rng: random.Random, at: datetime, item: dict[str, Any] | None) -> dict[str, Any]:
    base = item["base"] if item else None
    moving = base is not None and not base["isVisit"]
    trip = item.get("trip") if item else None
    activity = (trip or {}).get("classifiedActivityType") if moving else 1
    return {
        "id": app_id(rng),
        "lastSaved": at + timedelta(seconds=rng.randint(1, 60)),
        "date": at,
        "secondsFromGMT": 39600,
        "source": "LocoKit2",
        "sourceVersion": "9.0.0",
        "movingState": 1 if moving else rng.choice((0, -1)),
        "recordingState": rng.choice((1, 1, 2, 3, 4, 5, 0)),
        "disabled": bool(base and base["disabled"]),
        "timelineItemId": base["id"] if base else None,
        "latitude": -33.87 + rng.uniform(-0.05, 0.05),
        "longitude": 151.21 + rng.uniform(-0.05, 0.05),
        "altitude": rng.uniform(-3, 120),
        "horizontalAccuracy": rng.choice((4.7, 10.0, 65.0)),
        "verticalAccuracy": rng.uniform(1, 20),
        "speed": rng.uniform(0, 30) if moving else -1.0,
        "course": rng.uniform(0, 359.9) if moving else -1.0,
        "classifiedActivityType": activity,
        "confirmedActivityType": (trip or {}).get("confirmedActivityType") if moving else None,
        "stepHz": rng.uniform(0, 2.5),
        "xyAcceleration": rng.uniform(0, 1.5),
        "zAcceleration": rng.uniform(0, 1.5),
        "heartRate": float(rng.randint(50, 160)) if rng.random() < 0.6 else None,
        "rtreeId": rng.randint(1, 10**6),
    }
