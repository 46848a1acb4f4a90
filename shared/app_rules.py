"""The Arc apps' rules for a visit's and a trip's values, applied to decoded items.

LocoKit2's database (Database+Schema.swift at 68c0a86) drops, without a word, a visit or
trip row that breaks these CHECK rules, so Ferry never stores one. An archive record that
breaks one is set right the way the apps' own code does it (`TimelineItemVisit.
clearPlace` and `setUncertainty`, `TimelineItemTrip.update`), with a warning:

- visit: `confirmedPlace` only with a `placeId` (else false); `uncertainPlace` never
  together with `confirmedPlace` (a confirmed place is certain), and false only with a
  `placeId` (else true); both coordinates or neither, and never (0, 0) ("null island",
  which the apps' own migration turned into no coordinates); an empty `customTitle` is
  no title;
- trip: `uncertainActivityType` is false whenever a confirmed type is set, and true when
  there is no type at all.

The same rules are CHECK constraints of `timeline_items` (shared/store/schema.py), and
migration 0004 applied them to the rows Ferry held before.
"""

from __future__ import annotations

from typing import Any

from shared.fields import TRIP_FIELDS, VISIT_FIELDS, Problem

_V = {f.column: i for i, f in enumerate(VISIT_FIELDS)}
_T = {f.column: i for i, f in enumerate(TRIP_FIELDS)}


def _warn(found: list[Problem], field: str, reason: str) -> None:
    found.append(Problem(field, reason, True))


def visit_rules(valid: bool, visit: tuple[Any, ...], found: list[Problem]) -> tuple[Any, ...]:
    """The visit part with the apps' rules applied; each change is a warning in `found`."""
    if not valid:
        return visit
    values = list(visit)
    place = values[_V["place_id"]]
    confirmed, uncertain = values[_V["confirmed_place"]], values[_V["uncertain_place"]]
    if confirmed is True and place is None:
        values[_V["confirmed_place"]] = confirmed = False
        _warn(found, "visit.confirmedPlace", "true without a placeId; set to false")
    if uncertain is True and confirmed is True:
        values[_V["uncertain_place"]] = False
        _warn(found, "visit.uncertainPlace", "true for a confirmed place; set to false")
    elif uncertain is False and place is None:
        values[_V["uncertain_place"]] = True
        _warn(found, "visit.uncertainPlace", "false without a placeId; set to true")
    lat, lon = values[_V["latitude"]], values[_V["longitude"]]
    if (lat is None) != (lon is None) or (lat == 0 and lon == 0):
        values[_V["latitude"]] = values[_V["longitude"]] = None
        _warn(
            found,
            "visit.latitude/longitude",
            f"({lat}, {lon}) is not a position the Arc apps keep; both set to null",
        )
    if values[_V["custom_title"]] == "":
        values[_V["custom_title"]] = None
        _warn(found, "visit.customTitle", "empty; set to null")
    return tuple(values)


def trip_rules(trip: tuple[Any, ...], found: list[Problem]) -> tuple[Any, ...]:
    """The trip part with the apps' rules applied; each change is a warning in `found`."""
    uncertain = trip[_T["uncertain_activity_type"]]
    confirmed = trip[_T["confirmed_activity_type"]]
    classified = trip[_T["classified_activity_type"]]
    if uncertain is True and confirmed is not None:
        fixed = False
        _warn(found, "trip.uncertainActivityType", "true with a confirmed type; set to false")
    elif uncertain is False and confirmed is None and classified is None:
        fixed = True
        _warn(found, "trip.uncertainActivityType", "false without any type; set to true")
    else:
        return trip
    values = list(trip)
    values[_T["uncertain_activity_type"]] = fixed
    return tuple(values)
