"""Request times as SigV4 carries them: `X-Amz-Date` in ISO 8601 basic format
(`YYYYMMDDTHHMMSSZ`), or an HTTP `Date`, to and from epoch seconds.

Parsed by checking the fields in place and computing the epoch with integer arithmetic
(H. Hinnant's days-from-civil): no datetime objects and no exceptions on the way, and a
value that is not exactly one of these forms is None, never an approximation. Pure.
"""

from __future__ import annotations

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UTC_ZONES = ("GMT", "UTC", "+0000", "-0000")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_iso_basic(value: str) -> int | None:
    """Epoch seconds of `YYYYMMDDTHHMMSSZ`, or None if it is not exactly that."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" \
            or not (value[:8] + value[9:15]).isdigit() or not value.isascii():
        return None
    return _epoch_s(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                    int(value[11:13]), int(value[13:15]))


def parse_http_date(value: str) -> int | None:
    """Epoch seconds of an RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or
    the same in RFC 2822 with a zero offset (`-0000`, as botocore writes the Date)."""
    parts = value.split(" ")
    if len(parts) != 6 or parts[0][:-1] not in _DAYS or not parts[0].endswith(",") \
            or parts[2] not in _MONTHS or parts[5] not in _UTC_ZONES or len(parts[1]) != 2 \
            or len(parts[3]) != 4 or not (parts[1] + parts[3]).isdigit() or not value.isascii():
        return None
    clock = parts[4].split(":")
    if len(clock) != 3 or not all(len(c) == 2 and c.isdigit() for c in clock):
        return None
    return _epoch_s(int(parts[3]), _MONTHS.index(parts[2]) + 1, int(parts[1]),
                    int(clock[0]), int(clock[1]), int(clock[2]))


def _epoch_s(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int | None:
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and hour < 24
            and minute < 60 and second < 60):
        return None
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def iso_basic(epoch_s: int) -> str:
    """`YYYYMMDDTHHMMSSZ` of epoch seconds (the inverse of parse_iso_basic)."""
    days, second_of_day = divmod(epoch_s, 86400)
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    return f"{year:04d}{month:02d}{day:02d}T{hour:02d}{minute:02d}{second:02d}Z"
