"""A realistic synthetic timeline (`ferry seed`), loaded through COPY.

One person's days around a city: places (home, work, cafés, … plus a few never
visited), visits and trips alternating without gaps and linked previous/next, visits at
places, and samples linked to their items — every few seconds on trips, about once a
minute during visits. A few items are disabled or deleted. The same `seed` and `start`
give the same timeline.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from shared.fields import ITEM_COLUMNS, PLACE_COLUMNS
from shared.store.db import raw_connection

# On trips a sample comes this many times more often than during visits.
TRIP_DENSITY = 15
# LocoKit2's ActivityType codes (ActivityTypes/ActivityType.swift) for moving about a
# city: 2 walking, 4 cycling, 5 car, 20 train, 21 bus. (6 is airplane; 3 running.)
TRIP_ACTIVITIES = (2, 4, 5, 20, 21)
# ActivityType 1: stationary, for the samples of a visit.
STATIONARY_ACTIVITY = 1
PLACE_NAMES = (
    "Home",
    "Work",
    "Corner Café",
    "Central Library",
    "Riverside Park",
    "Gym",
    "Market Hall",
    "Station",
    "Bakery",
    "Cinema",
    "Grandma's",
    "Bookshop",
    "Harbour",
    "Museum",
    "Pool",
    "Noodle Bar",
    "Pharmacy",
    "Office Annex",
    "Climbing Wall",
    "Garden Centre",
)
CITIES = (
    (51.5072, -0.1276, "London", "GB"),
    (52.52, 13.405, "Berlin", "DE"),
    (-33.8688, 151.2093, "Sydney", "AU"),
    (40.7128, -74.006, "New York", "US"),
)


@dataclass(frozen=True, slots=True)
class SeedStats:
    """How much was written."""

    places: int
    items: int
    samples: int


@dataclass(slots=True)
class _Place:
    id: str
    name: str
    lat: float
    lon: float


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ts(moment: datetime) -> str:
    return moment.isoformat()


def _line(values: list[object]) -> str:
    # COPY text format; seeded values never hold tabs, newlines or backslashes.
    return "\t".join("\\N" if v is None else str(v) for v in values) + "\n"


class _Timeline:
    def __init__(self, *, rng: random.Random, start: datetime, days: int) -> None:
        self.rng = rng
        self.start = start
        self.end = start + timedelta(days=days)
        lat, lon, self.city, self.country = rng.choice(CITIES)
        self.offset = 3600 if self.country in ("GB", "DE") else 0
        count = min(len(PLACE_NAMES), max(6, 6 + days // 4))
        self.places = [
            _Place(
                _uuid(rng),
                PLACE_NAMES[i],
                lat + rng.uniform(-0.08, 0.08),
                lon + rng.uniform(-0.12, 0.12),
            )
            for i in range(count)
        ]
        # The last two places are never visited: a full export must still hold them.
        self.visited = self.places[:-2]

    def place_rows(self) -> Iterator[str]:
        for index, place in enumerate(self.places):
            values: dict[str, object] = {
                "id": place.id,
                "name": place.name,
                "street_address": f"{10 + index} {place.name} Street",
                "locality": self.city,
                "country_code": self.country,
                "seconds_from_gmt": self.offset,
                "latitude": round(place.lat, 7),
                "longitude": round(place.lon, 7),
                "radius_mean": round(self.rng.uniform(20, 80), 2),
                "radius_sd": round(self.rng.uniform(5, 20), 2),
                "is_stale": False,
                "visit_count": self.rng.randint(0, 400),
                "visit_days": self.rng.randint(0, 200),
                "last_visit_date": _ts(self.end),
                "mapbox_place_id": f"poi.{self.rng.getrandbits(40)}" if index % 2 else None,
                "mapbox_category": "cafe" if "Café" in place.name else None,
                "google_place_id": f"ChIJ{self.rng.getrandbits(60):x}" if index % 3 == 0 else None,
                "foursquare_category_v2_id": "4bf58dd8d48988d1e0931735" if index == 2 else None,
                "source": "LocoKit2",
                "last_saved": _ts(self.end),
            }
            yield _line([values.get(c) for c in PLACE_COLUMNS])

    def items(self) -> Iterator[dict[str, object]]:
        """Alternating visits and trips from start to end, no gaps, edges set."""
        rng = self.rng
        moment = self.start
        at = self.visited[0]
        is_visit = True
        previous: dict[str, object] | None = None
        while moment < self.end:
            if is_visit:
                hour = moment.hour + moment.minute / 60
                long_stay = at is self.visited[0] and (hour >= 19 or hour < 6)
                minutes = rng.uniform(420, 660) if long_stay else rng.uniform(15, 240)
            else:
                minutes = rng.uniform(6, 55)
            end = min(self.end, moment + timedelta(minutes=minutes))
            item: dict[str, object] = {
                "id": _uuid(rng),
                "is_visit": is_visit,
                "start_date": moment,
                "end_date": end,
                "source": "LocoKit2",
                "source_version": "9.2.0",
                "disabled": (not is_visit) and rng.random() < 0.01,
                "deleted": False,
                "locked": False,
                "samples_changed": False,
                "last_saved": end + timedelta(seconds=rng.randint(5, 900)),
                "previous_item_id": previous["id"] if previous else None,
                "next_item_id": None,
                "step_count": rng.randint(0, 3000),
                "floors_ascended": rng.randint(0, 5),
                "floors_descended": rng.randint(0, 5),
                "average_altitude": round(rng.uniform(5, 80), 2),
                "active_energy_burned": round(rng.uniform(5, 300), 2),
                "average_heart_rate": round(rng.uniform(60, 110), 1)
                if rng.random() < 0.7
                else None,
                "max_heart_rate": round(rng.uniform(110, 170), 1) if rng.random() < 0.7 else None,
            }
            if is_visit:
                # The Arc apps' rules: confirmed only with a place; uncertain never when
                # confirmed, and always without a place.
                place_id = at.id if rng.random() > 0.03 else None
                confirmed = rng.random() < 0.6 and place_id is not None
                uncertain = (rng.random() < 0.25 and not confirmed) or place_id is None
                item.update(
                    place=at,
                    latitude=round(at.lat, 7),
                    longitude=round(at.lon, 7),
                    radius_mean=round(rng.uniform(15, 60), 2),
                    radius_sd=round(rng.uniform(3, 15), 2),
                    place_id=place_id,
                    confirmed_place=confirmed,
                    uncertain_place=uncertain,
                    visit_last_saved=item["last_saved"],
                    custom_title="Lunch" if rng.random() < 0.05 else None,
                    street_address=None,
                    locality=self.city,
                    country_code=self.country,
                )
            else:
                home = self.visited[0]
                if moment.hour >= 18 and at is not home:
                    destination = home  # evenings end at home
                else:
                    destination = rng.choice([p for p in self.visited if p is not at])
                seconds = max(1.0, (end - moment).total_seconds())
                distance = _metres(at, destination)
                activity = rng.choice(TRIP_ACTIVITIES)
                # The Arc apps' rules: never uncertain with a confirmed type.
                confirmed_type = activity if rng.random() < 0.3 else None
                item.update(
                    origin=at,
                    destination=destination,
                    distance=round(distance, 1),
                    speed=round(distance / seconds, 3),
                    classified_activity_type=activity,
                    confirmed_activity_type=confirmed_type,
                    uncertain_activity_type=rng.random() < 0.2 and confirmed_type is None,
                    trip_last_saved=item["last_saved"],
                )
                at = destination
            if previous is not None:
                previous["next_item_id"] = item["id"]
                yield previous
            previous = item
            moment = end
            is_visit = not is_visit
        if previous is not None:
            yield previous

    def deleted_items(self, count: int) -> Iterator[dict[str, object]]:
        """Short items the user deleted: outside the edge chain, without samples."""
        for _ in range(count):
            moment = self.start + timedelta(
                seconds=self.rng.uniform(0, (self.end - self.start).total_seconds() - 120)
            )
            yield {
                "id": _uuid(self.rng),
                "is_visit": False,
                "start_date": moment,
                "end_date": moment + timedelta(seconds=40),
                "source": "LocoKit2",
                "source_version": "9.2.0",
                "disabled": False,
                "deleted": True,
                "locked": False,
                "samples_changed": False,
                "last_saved": moment + timedelta(minutes=1),
                "distance": 12.0,
                "speed": 0.3,
                "classified_activity_type": 2,
                "uncertain_activity_type": True,
                "trip_last_saved": moment + timedelta(minutes=1),
            }

    def sample_interval(self, trip_seconds: float, visit_seconds: float, total: int) -> float:
        """Trip sampling interval that gives `total` samples overall."""
        return max(0.5, (trip_seconds + visit_seconds / TRIP_DENSITY) / max(1, total))

    def sample_plan(self, item: dict[str, object], trip_interval: float) -> str | None:
        """One line of the temporary table the samples are generated from (None: none)."""
        seconds = (item["end_date"] - item["start_date"]).total_seconds()  # type: ignore[operator]
        is_visit = bool(item["is_visit"])
        step = trip_interval * (TRIP_DENSITY if is_visit else 1)
        count = int(seconds // step)
        if count <= 0:
            return None
        if is_visit:
            origin = destination = cast(_Place, item["place"])
            speed, activity = 0.2, STATIONARY_ACTIVITY
        else:
            origin, destination = cast(_Place, item["origin"]), cast(_Place, item["destination"])
            speed, activity = (
                cast(float, item["speed"]),
                cast(int, item["classified_activity_type"]),
            )
        start = cast(datetime, item["start_date"])
        return _line(
            [
                item["id"],
                "t" if is_visit else "f",
                start.isoformat(),
                step,
                count,
                origin.lat,
                origin.lon,
                destination.lat,
                destination.lon,
                speed,
                activity,
                self.offset,
            ]
        )


# Samples are made by PostgreSQL from one line per item: ~10x faster than formatting a
# million rows in Python. Ids are md5 of (seed, item, n), so the same seed gives the
# same ids; the noise comes from random() after setseed().
_SAMPLE_PLAN_TABLE = """
CREATE TEMP TABLE seed_plan (
    item_id uuid, is_visit bool, start_date timestamptz, step float8, n int,
    lat0 float8, lon0 float8, lat1 float8, lon1 float8, speed float8, activity int,
    utc_offset int
) ON COMMIT DROP
"""
_SAMPLE_INSERT = """
INSERT INTO samples (account_id, id, date, seconds_from_gmt, source, source_version,
    moving_state, recording_state, disabled, last_saved, timeline_item_id, latitude,
    longitude, altitude, horizontal_accuracy, vertical_accuracy, speed, course, step_hz,
    xy_acceleration, z_acceleration, heart_rate, classified_activity_type,
    confirmed_activity_type)
SELECT %(account)s, md5(%(salt)s || p.item_id::text || g.k)::uuid, d.at, p.utc_offset,
    'LocoKit2', '9.2.0', d.moving, CASE WHEN d.moving = 0 THEN 1 ELSE 2 END, false,
    d.at + interval '30 seconds', p.item_id,
    round((p.lat0 + (p.lat1 - p.lat0) * d.share + (random() - 0.5) * 0.0003)::numeric, 7),
    round((p.lon0 + (p.lon1 - p.lon0) * d.share + (random() - 0.5) * 0.0003)::numeric, 7),
    round((5 + random() * 75)::numeric, 2), round((3 + random() * 27)::numeric, 2),
    round((2 + random() * 10)::numeric, 2),
    round((p.speed * (0.7 + random() * 0.6))::numeric, 3),
    round((degrees(atan2(p.lon1 - p.lon0, p.lat1 - p.lat0)) + 360)::numeric %% 360, 2),
    CASE WHEN p.is_visit THEN 0 ELSE round((random() * 2.2)::numeric, 3) END,
    round(random()::numeric, 4), round(random()::numeric, 4),
    CASE WHEN random() < 0.4 THEN round((55 + random() * 85)::numeric, 1) END,
    p.activity, NULL
FROM seed_plan p
CROSS JOIN LATERAL generate_series(0, p.n - 1) AS g(k)
CROSS JOIN LATERAL (SELECT
    p.start_date + make_interval(secs => g.k * p.step + random() * p.step * 0.3) AS at,
    CASE WHEN p.is_visit THEN 0 WHEN random() > 0.02 THEN 1 ELSE -1 END AS moving,
    g.k::float8 / greatest(1, p.n - 1) AS share) d
"""


def _metres(a: _Place, b: _Place) -> float:
    dlat = math.radians(b.lat - a.lat)
    dlon = math.radians(b.lon - a.lon)
    h = (
        math.sin(dlat / 2) ** 2
        + math.cos(math.radians(a.lat)) * math.cos(math.radians(b.lat)) * math.sin(dlon / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _item_line(item: dict[str, object]) -> str:
    values = []
    for column in ITEM_COLUMNS:
        value = item.get(column)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "t" if value else "f"
        values.append(value)
    return _line(values)


def seed_timeline(
    database_url: str,
    account_id: str,
    *,
    days: int,
    samples_per_day: int = 2880,
    seed: int = 0,
    start: datetime | None = None,
) -> SeedStats:
    """Write a synthetic timeline of `days` days into the account, in one transaction."""
    if days < 1:
        raise ValueError("days must be at least 1")
    if samples_per_day < 0:
        raise ValueError("samples per day must not be negative")
    rng = random.Random(seed)
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)
    timeline = _Timeline(rng=rng, start=start.astimezone(UTC), days=days)
    items = list(timeline.items())
    items += list(timeline.deleted_items(max(1, days // 30)))
    trip_seconds = sum(
        (i["end_date"] - i["start_date"]).total_seconds()  # type: ignore[operator]
        for i in items
        if not i["is_visit"] and not i["deleted"]
    )
    visit_seconds = sum(
        (i["end_date"] - i["start_date"]).total_seconds()  # type: ignore[operator]
        for i in items
        if i["is_visit"]
    )
    interval = timeline.sample_interval(trip_seconds, visit_seconds, days * samples_per_day)
    prefix = f"{account_id}\t"
    with raw_connection(database_url) as conn:
        with conn.cursor() as cursor:
            columns = ", ".join(("account_id", *PLACE_COLUMNS))
            with cursor.copy(f"COPY places ({columns}) FROM STDIN") as copy:
                for line in timeline.place_rows():
                    copy.write(prefix + line)
            columns = ", ".join(("account_id", *ITEM_COLUMNS))
            with cursor.copy(f"COPY timeline_items ({columns}) FROM STDIN") as copy:
                for item in items:
                    copy.write(prefix + _item_line(item))
            sample_count = 0
            if samples_per_day:
                cursor.execute(_SAMPLE_PLAN_TABLE)
                with cursor.copy("COPY seed_plan FROM STDIN") as copy:
                    for item in items:
                        plan = None if item["deleted"] else timeline.sample_plan(item, interval)
                        if plan is not None:
                            copy.write(plan)
                cursor.execute("SELECT setseed(%s)", ((seed % 1000) / 1000.0,))
                cursor.execute(_SAMPLE_INSERT, {"account": account_id, "salt": f"{seed}:"})
                sample_count = cursor.rowcount
        conn.commit()
    return SeedStats(places=len(timeline.places), items=len(items), samples=sample_count)
